#!/usr/bin/env bash
# Compatibility check against the machine's own Postgres (Debian's 15 here) through DATABASE_URL:
# initdb a throwaway cluster under /tmp with `pg_config --bindir` binaries, start it on a free
# loopback port, run the ledger tests against it, stop and remove it. Not part of `npm test`.
#
#   bash scripts/pg15-check.sh [vitest paths...]     (default: test/ledger test/db test/cli)
#
# As root, the cluster runs as user `postgres` (Postgres refuses to run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${PG_BINDIR:-$(pg_config --bindir)}"
[ -x "$BIN/initdb" ] || { echo "pg15-check: no initdb in $BIN (set PG_BINDIR)" >&2; exit 2; }
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(test/ledger test/db test/cli)

DIR="$(mktemp -d -t okit-pg15-XXXXXX)"
chmod 755 "$DIR"
PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
PW="$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi

cleanup() {
  as_pg "$BIN/pg_ctl" stop -D "$DIR/data" -m fast -w >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

echo "$PW" > "$DIR/pw"
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR/pw"; fi
as_pg "$BIN/initdb" -D "$DIR/data" -U okit --pwfile="$DIR/pw" --auth=scram-sha-256 -E UTF8 --locale=C >/dev/null
as_pg "$BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200" >/dev/null

export DATABASE_URL="postgres://okit:$PW@127.0.0.1:$PORT/postgres"
echo "pg15-check: $("$BIN/postgres" --version) on 127.0.0.1:$PORT"
node -e 'const pg=require("pg");const c=new pg.Client(process.env.DATABASE_URL);c.connect().then(()=>c.query("SELECT version()")).then(r=>{console.log("pg15-check: server says "+r.rows[0].version);return c.end()})'
[ -f dist/cli/main.js ] || { npx tsc -p tsconfig.json && node scripts/copy-assets.mjs; }
npx vitest run "${TESTS[@]}"
