#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback for sealpost's tests and
# prints the URL to use as SEALPOST_TEST_POSTGRES. Run as root (it switches to
# the postgres user) or as the postgres user itself.
#   usage: scripts/pg-start.sh [DATADIR] [PORT]
# With SEALPOST_PG_FRESH=1 an existing cluster in DATADIR is stopped and
# removed first, so every run starts from nothing.
set -euo pipefail
datadir=${1:-/tmp/sealpost-pg}
port=${2:-55432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bindir" ] || { echo "pg-start: PostgreSQL binaries not found under /usr/lib/postgresql" >&2; exit 1; }

as_pg() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

if [ "${SEALPOST_PG_FRESH:-}" = 1 ] && [ -d "$datadir" ]; then
  as_pg "$bindir/pg_ctl" -D "$datadir" stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$datadir"
fi
mkdir -p "$datadir"
chown postgres: "$datadir" 2>/dev/null || true
if [ ! -f "$datadir/PG_VERSION" ]; then
  as_pg "$bindir/initdb" -D "$datadir" -U postgres -A trust --no-sync >/dev/null
fi
if ! as_pg "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
  as_pg "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w \
    -o "-h 127.0.0.1 -p $port -k /tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null ||
    { echo "pg-start: PostgreSQL did not start (is port $port taken?):" >&2; tail -n 20 "$datadir/server.log" >&2; exit 1; }
fi
as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='sealpost_test'" | grep -q 1 ||
  as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres sealpost_test
echo "postgres://postgres@127.0.0.1:$port/sealpost_test?sslmode=disable"
