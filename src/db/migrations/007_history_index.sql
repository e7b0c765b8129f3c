-- okit.job_history had two indexes on (job_id, n): the UNIQUE constraint's and
-- job_history_job_idx (migration 001). Every history row paid for both; the unique one serves
-- every lookup by job.
DROP INDEX okit.job_history_job_idx;
