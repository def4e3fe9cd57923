#!/usr/bin/env bash
# Runs sealpost's whole test suite with the race detector.
#
# The PostgreSQL half of the suite runs against $SEALPOST_TEST_POSTGRES. When
# that is unset and PostgreSQL is installed here (and we may run it as the
# postgres user), a throwaway cluster is started on loopback for the run;
# otherwise those tests are skipped, and this script says so.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SEALPOST_TEST_POSTGRES:-}" ]; then
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ "$(id -un)" = postgres ]; }; then
    SEALPOST_TEST_POSTGRES=$(scripts/pg-start.sh "${SEALPOST_TEST_PGDATA:-/tmp/sealpost-pg}" "${SEALPOST_TEST_PGPORT:-55432}")
    export SEALPOST_TEST_POSTGRES
    echo "test.sh: PostgreSQL tests run against a local throwaway cluster ($SEALPOST_TEST_POSTGRES)"
  else
    echo "test.sh: PostgreSQL is not available: the PostgreSQL store tests are SKIPPED (set SEALPOST_TEST_POSTGRES to run them)"
  fi
else
  echo "test.sh: PostgreSQL tests run against \$SEALPOST_TEST_POSTGRES"
fi

go test -race -count=1 "$@" ./...
