#!/usr/bin/env bash
# Soak: sealpost's real binary under a steady mixed load for a while (default
# 10 minutes): Enforced TLS and Event Webhook settings read and written
# (partly on behalf of subusers), mail sent, every accepted message delivered
# to fake MX servers and reported to a signed Event Webhook. It fails on any
# unexpected answer, on mail not delivered after the drain, and on a server
# whose RSS, open files or goroutines grow through the run. The test is
# bench/soak's TestSoak; it is built without -race so that what is measured
# is the binary as shipped, not the race detector.
#
#   usage: scripts/soak.sh [duration]        e.g. scripts/soak.sh 10m, scripts/soak.sh 30s
#
# Knobs, all environment variables (see bench/soak/soak.go):
#   SEALPOST_SOAK_RATE      requests/s over all clients (default 800), or "max" for closed loop
#   SEALPOST_SOAK_CLIENTS   concurrent clients (default 16)
#   SEALPOST_SOAK_MIX       default tls_get=50,hook_get=10,tls_patch=7,hook_patch=3,send=30
#   SEALPOST_SOAK_INTERVAL  throughput/latency report interval (default 30s)
#   SEALPOST_SOAK_SAMPLE    RSS/fds/goroutines sampling interval (default 10s; shorter in short runs)
#   SEALPOST_SOAK_DRAIN     longest wait for delivery after the load (default 2m)
#   SEALPOST_SOAK_DATABASE  sqlite (default), postgres (a fresh schema on $SEALPOST_TEST_POSTGRES),
#                           or a postgres:// URL of an empty database
#   SEALPOST_SOAK_REPORT    report file (default \$TMPDIR/sealpost-soak-<date>-<time>.txt)
#   SEALPOST_SOAK_CSV       resource time series as CSV (default: none)
#   SEALPOST_SOAK_BINARY    run this sealpost binary instead of building the checkout
#   SEALPOST_SOAK_RSS_TOLERANCE, SEALPOST_SOAK_RSS_SLACK_MIB   the RSS growth rule (default 10 and 8)
set -euo pipefail
duration=${1:-${SEALPOST_SOAK:-10m}}
report=${SEALPOST_SOAK_REPORT:-${TMPDIR:-/tmp}/sealpost-soak-$(date +%Y%m%d-%H%M%S).txt}
case "$report" in /*) ;; *) report=$PWD/$report ;; esac
if [ -n "${SEALPOST_SOAK_CSV:-}" ]; then
  case "$SEALPOST_SOAK_CSV" in /*) ;; *) SEALPOST_SOAK_CSV=$PWD/$SEALPOST_SOAK_CSV ;; esac
  export SEALPOST_SOAK_CSV
fi
cd "$(dirname "$0")/.."

# go test's own timeout must outlast the load, the drain and the build.
secs=0
rest=$duration
while [[ $rest =~ ^([0-9]+)([hms])(.*)$ ]]; do
  case ${BASH_REMATCH[2]} in h) m=3600 ;; m) m=60 ;; s) m=1 ;; esac
  secs=$((secs + BASH_REMATCH[1] * m))
  rest=${BASH_REMATCH[3]}
done
if [ -n "$rest" ] || [ "$secs" -eq 0 ]; then
  echo "soak: $duration is not a duration such as 30s, 10m or 1h30m" >&2
  exit 2
fi
timeout=$((secs + 900))s

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
echo "soak: $duration on commit $commit, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); report in $report"

status=0
SEALPOST_SOAK=$duration SEALPOST_SOAK_REPORT=$report \
  go test -count=1 -timeout "$timeout" -run '^TestSoak$' -v ./bench/soak/ || status=$?
if [ -f "$report" ]; then
  { echo "commit $commit, $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"; } >>"$report"
fi
exit $status
