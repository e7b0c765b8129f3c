#!/bin/sh
# Prints `okit simulate` history digests for a fixed set of seeds, job counts and worker
# counts, each into a fresh tenant of one throwaway embedded Postgres. Run it before and after
# a change to the ledger's write path: batching changes how rows are written, not what is
# written, so the lines must be identical. Usage: sh scripts/simulate-digests.sh [> before.txt]
set -eu
cd "$(dirname "$0")/.."
npm run build >/dev/null
home=$(mktemp -d -t okit-digests-XXXXXX)
chmod 755 "$home"
trap 'OKIT_HOME="$home/pg" node dist/cli/main.js db stop >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
unset DATABASE_URL
export OKIT_HOME="$home/pg"
okit() { node dist/cli/main.js "$@"; }
okit db start >/dev/null
for run in "7 10 4" "1 200 4" "42 300 8" "3735928559 120 2" "99 500 16"; do
  set -- $run
  out=$(okit simulate --seed "$1" --jobs "$2" --workers "$3" --tenant "d-$1-$2-$3" --json)
  echo "$out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(`seed=${r.seed} jobs=${r.jobs} workers='"$3"' rows=${r.historyRows} throttle_events=${r.throttleEvents} head=${r.ledgerHead} sha256=${r.historyDigest}`)})'
done
