#!/usr/bin/env bash
# Runs sealpost's whole test suite with the race detector.
#   usage: scripts/test.sh [go test flags]
#
# The PostgreSQL half of the suite runs against $SEALPOST_TEST_POSTGRES. When
# that is unset and PostgreSQL is installed here (and we may run it as the
# postgres user), a throwaway cluster is started on loopback for the run, in
# a directory of its own on a free port, and stopped and removed when the
# script exits, however it exits; otherwise those tests are skipped, and this
# script says so. SEALPOST_TEST_PACKAGES (default ./...) narrows the run.
set -euo pipefail
cd "$(dirname "$0")/.."

pgdir=
stop_pg() {
  [ -n "$pgdir" ] || return 0
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [ "$(id -un)" = postgres ]; then
    "$bindir/pg_ctl" -D "$pgdir/data" stop -m immediate >/dev/null 2>&1 || true
  else
    runuser -u postgres -- "$bindir/pg_ctl" -D "$pgdir/data" stop -m immediate >/dev/null 2>&1 || true
  fi
  rm -rf "$pgdir"
}
trap stop_pg EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port asks the kernel for a loopback port no one listens on.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -z "${SEALPOST_TEST_POSTGRES:-}" ]; then
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ "$(id -un)" = postgres ]; }; then
    pgdir=$(mktemp -d "${TMPDIR:-/tmp}/sealpost-test-pg.XXXXXX")
    chmod 755 "$pgdir" # the postgres user creates its data directory in it
    SEALPOST_TEST_POSTGRES=$(scripts/pg-start.sh "$pgdir/data" "$(free_port)")
    export SEALPOST_TEST_POSTGRES
    echo "test.sh: PostgreSQL tests run against a throwaway cluster in $pgdir ($SEALPOST_TEST_POSTGRES), removed at exit"
  else
    echo "test.sh: PostgreSQL is not available: the PostgreSQL store tests are SKIPPED (set SEALPOST_TEST_POSTGRES to run them)"
  fi
else
  echo "test.sh: PostgreSQL tests run against \$SEALPOST_TEST_POSTGRES"
fi

# Not exec: the EXIT trap must still stop the cluster.
go test -race -count=1 -timeout 30m "$@" ${SEALPOST_TEST_PACKAGES:-./...}
