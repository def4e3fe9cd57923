#!/usr/bin/env bash
# Delivery rate: sealpost (SQLite queue, runner, SMTP client under
# require_valid_cert with TLS 1.3, events recorded) beside a minimal Go SMTP
# client loop doing the same verified STARTTLS 1.3 handshakes, against the
# same fake MX at the same concurrency (BenchmarkDeliveryRate in
# delivery/bench_test.go), and sealpost again with SMTP sessions reused. Each
# round runs them one after the other, so drift hits all alike; the ratio
# (sealpost to baseline, without reuse) is the median of the rounds'.
#   usage: scripts/bench-delivery.sh [rounds] [messages-per-round]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
n=${2:-2000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/delivery.test" ./delivery/
printf '%-6s %14s %14s %8s %14s\n' round baseline/s sealpost/s ratio reuse/s
for r in $(seq "$rounds"); do
  (cd "$work" && ./delivery.test -test.run '^$' -test.bench BenchmarkDeliveryRate -test.benchtime "${n}x") >"$work/out"
  b=$(awk '/baseline=/ {for (i=1;i<=NF;i++) if ($(i+1)=="msgs/s") print $i}' "$work/out")
  s=$(awk '/sealpost=/ {for (i=1;i<=NF;i++) if ($(i+1)=="msgs/s") print $i}' "$work/out")
  u=$(awk '/sealpost-reuse=/ {for (i=1;i<=NF;i++) if ($(i+1)=="msgs/s") print $i}' "$work/out")
  [ -n "$b" ] && [ -n "$s" ] || { echo "bench-delivery: no figures in:" >&2; cat "$work/out" >&2; exit 1; }
  ratio=$(awk -v s="$s" -v b="$b" 'BEGIN {printf "%.1f", 100*s/b}')
  printf '%-6s %14s %14s %7s%% %14s\n' "$r" "$b" "$s" "$ratio" "$u"
  echo "$b $s $ratio $u" >>"$work/rounds"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "median of $rounds rounds of $n messages each:"
echo "| | msgs/s |"
echo "| --- | ---: |"
echo "| minimal Go SMTP client loop (baseline) | $(awk '{print $1}' "$work/rounds" | median) |"
echo "| sealpost, SQLite, require_valid_cert + TLS 1.3 | $(awk '{print $2}' "$work/rounds" | median) |"
echo "| ratio (median of the rounds' ratios) | $(awk '{print $3}' "$work/rounds" | median) % |"
echo "| sealpost with SMTP sessions reused | $(awk '{print $4}' "$work/rounds" | median) |"
