#!/usr/bin/env bash
# Load benchmark of the hot path: GET /v3/user/settings/enforced_tls with a
# valid key on sealpost (SQLite) against a bare net/http handler returning
# the same JSON, measured in one run with wrk (apt-get install wrk).
#
# On a 2-core machine the server is pinned to one core and wrk to the other,
# so both servers get the same CPU and the load generator never competes.
#   usage: scripts/bench-settings.sh [seconds-per-round] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
conns=${3:-32}
command -v wrk >/dev/null || { echo "bench-settings: wrk is required (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/sealpost" ./cmd/sealpost
CGO_ENABLED=0 go build -o "$work/bareserver" ./bench/bareserver

server_cpu=1; load_cpu=0
[ "$(nproc)" -ge 2 ] || { server_cpu=0; load_cpu=0; }

taskset -c $server_cpu "$work/sealpost" serve --http-addr 127.0.0.1:18080 --database "sqlite:$work/bench.db" \
  --rate-limit 2000000000 --allow-destinations 127.0.0.0/8 --log-level warn >"$work/key" 2>"$work/sealpost.log" &
pids+=($!)
taskset -c $server_cpu "$work/bareserver" -addr 127.0.0.1:18081 &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$work/key" ] && curl -fs -o /dev/null http://127.0.0.1:18081/v3/user/settings/enforced_tls && break
  sleep 0.1
done
key=$(head -n1 "$work/key")
[ -n "$key" ] || { echo "bench-settings: sealpost printed no key" >&2; cat "$work/sealpost.log" >&2; exit 1; }
path=/v3/user/settings/enforced_tls
curl -fs -H "Authorization: Bearer $key" "http://127.0.0.1:18080$path" | grep -q '"version":1.1' || { echo "bench-settings: sealpost GET failed" >&2; exit 1; }

# wrk prints "Requests/sec: N" and, with --latency, " 99% Xus|ms|s".
measure() { # url, extra header args...
  local url=$1; shift
  taskset -c $load_cpu wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "$url" >"$work/wrk.out"
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' "$work/wrk.out")
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "bench-settings: non-2xx responses:" >&2; cat "$work/wrk.out" >&2; exit 1; fi
  echo "$rps $p99"
}

# Warm both up, then alternate so drift affects both alike.
measure "http://127.0.0.1:18080$path" -H "Authorization: Bearer $key" >/dev/null
measure "http://127.0.0.1:18081$path" >/dev/null
printf '%-6s %-22s %12s %10s\n' round server req/s p99_ms
for r in $(seq "$rounds"); do
  read -r s_rps s_p99 < <(measure "http://127.0.0.1:18080$path" -H "Authorization: Bearer $key")
  read -r b_rps b_p99 < <(measure "http://127.0.0.1:18081$path")
  printf '%-6s %-22s %12s %10s\n' "$r" "sealpost (sqlite)" "$s_rps" "$s_p99" "$r" "bare net/http" "$b_rps" "$b_p99"
  echo "$s_rps $s_p99 $b_rps $b_p99" >>"$work/rounds"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
s_rps=$(awk '{print $1}' "$work/rounds" | median); s_p99=$(awk '{print $2}' "$work/rounds" | median)
b_rps=$(awk '{print $3}' "$work/rounds" | median); b_p99=$(awk '{print $4}' "$work/rounds" | median)
ratio=$(awk '{printf "%.1f\n", 100*$1/$3}' "$work/rounds" | median)
echo
echo "median of $rounds rounds, ${secs}s each, $conns connections, wrk on CPU $load_cpu, servers on CPU $server_cpu:"
echo "| server | requests/s | p99 latency (ms) |"
echo "| --- | ---: | ---: |"
echo "| sealpost, SQLite, authenticated GET | $s_rps | $s_p99 |"
echo "| bare net/http, constant JSON | $b_rps | $b_p99 |"
echo "| ratio (sealpost / bare, median of the rounds' ratios) | $ratio % | |"
