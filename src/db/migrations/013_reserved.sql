-- Placeholder: number 013 is reserved for issue 14's other branch (i14); whichever lands
-- first, the merge keeps that branch's 013 and drops this file.
SELECT 1;
