#!/usr/bin/env bash
# Runs sealpost's crash safety proofs: the real binary killed with SIGKILL
# during mail sends and at 10/50/90% of delivery, on SQLite (then restarted)
# and on two PostgreSQL nodes (one killed, the other carrying on), checked at
# the fake MX and at the Event Webhook receiver. Prints one line of figures
# per kill point.
#   usage: scripts/crash.sh [-norace] [go test flags...]
# SEALPOST_CRASH_N sets the messages per kill point (default 2000). The
# PostgreSQL half runs against $SEALPOST_TEST_POSTGRES, or a throwaway local
# cluster when that is unset and PostgreSQL is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

race=-race
if [ "${1:-}" = -norace ]; then
  race=
  shift
fi

if [ -z "${SEALPOST_TEST_POSTGRES:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
  { [ "$(id -u)" = 0 ] || [ "$(id -un)" = postgres ]; }; then
  SEALPOST_TEST_POSTGRES=$(scripts/pg-start.sh "${SEALPOST_TEST_PGDATA:-/tmp/sealpost-pg}" "${SEALPOST_TEST_PGPORT:-55432}")
  export SEALPOST_TEST_POSTGRES
fi
[ -n "${SEALPOST_TEST_POSTGRES:-}" ] || echo "crash.sh: SEALPOST_TEST_POSTGRES unset: the PostgreSQL kill points are SKIPPED"

go test $race -count=1 -run 'TestCrash' -v "$@" ./cmd/sealpost/ |
  grep -E '^(--- |    ---|ok|FAIL|PASS)|crash_test.go'
