#!/usr/bin/env bash
# Load benchmark of mail send acceptance: POST /v3/mail/send on sealpost
# (SQLite; a 202 is sent only after the message is durably stored) against a
# bare net/http handler that reads the body and answers 202 storing nothing,
# in one run, with wrk (apt-get install wrk). Delivery is off on the
# measured server (--delivery-workers 0) so that only acceptance is timed.
# Afterwards the script checks that every 202 left a stored message.
#
# On a 2-core machine the servers are pinned to one core and wrk to the other.
#   usage: scripts/bench-mailsend.sh [seconds-per-round] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
conns=${3:-32}
command -v wrk >/dev/null || { echo "bench-mailsend: wrk is required (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/sealpost" ./cmd/sealpost
CGO_ENABLED=0 go build -o "$work/bareserver" ./bench/bareserver

server_cpu=1; load_cpu=0
[ "$(nproc)" -ge 2 ] || { server_cpu=0; load_cpu=0; }

taskset -c $server_cpu "$work/sealpost" serve --http-addr 127.0.0.1:18090 --database "sqlite:$work/bench.db" \
  --delivery-workers 0 --webhook-workers 0 --allow-destinations 127.0.0.0/8 --mail-send-rate-limit 2000000000 --log-level warn >"$work/key" 2>"$work/sealpost.log" &
pids+=($!)
taskset -c $server_cpu "$work/bareserver" -addr 127.0.0.1:18091 &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$work/key" ] && curl -fs -o /dev/null http://127.0.0.1:18091/v3/user/settings/enforced_tls && break
  sleep 0.1
done
key=$(head -n1 "$work/key")
[ -n "$key" ] || { echo "bench-mailsend: sealpost printed no key" >&2; cat "$work/sealpost.log" >&2; exit 1; }

# A typical transactional message: one recipient, text and HTML parts.
body='{"personalizations":[{"to":[{"email":"rcpt@example.test","name":"Recipient"}]}],"from":{"email":"sender@example.test","name":"Sender"},"subject":"Your order has shipped","content":[{"type":"text/plain","value":"Hello,\n\nyour order 1234 has shipped and will arrive on Thursday.\n\nThanks for shopping with us."},{"type":"text/html","value":"<p>Hello,</p><p>your order <b>1234</b> has shipped and will arrive on Thursday.</p><p>Thanks for shopping with us.</p>"}],"categories":["shipping"],"custom_args":{"order":"1234"}}'
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [==[$body]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" http://127.0.0.1:18090/v3/mail/send)
[ "$code" = 202 ] || { echo "bench-mailsend: sealpost answered $code to the mail send" >&2; exit 1; }

measure() { # url -> "rps p99ms requests"
  taskset -c $load_cpu wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$work/post.lua" "$1" >"$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "bench-mailsend: non-2xx responses:" >&2; cat "$work/wrk.out" >&2; exit 1; fi
  local rps p99 n
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' "$work/wrk.out")
  n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  echo "$rps $p99 $n"
}

sent=1 # the curl check above
read -r _ _ n < <(measure http://127.0.0.1:18090/v3/mail/send); sent=$((sent + n))
measure http://127.0.0.1:18091/v3/mail/send >/dev/null
printf '%-6s %-28s %12s %10s\n' round server 202/s p99_ms
for r in $(seq "$rounds"); do
  read -r s_rps s_p99 n < <(measure http://127.0.0.1:18090/v3/mail/send); sent=$((sent + n))
  read -r b_rps b_p99 _ < <(measure http://127.0.0.1:18091/v3/mail/send)
  printf '%-6s %-28s %12s %10s\n' "$r" "sealpost (sqlite, durable)" "$s_rps" "$s_p99" "$r" "bare net/http (no storage)" "$b_rps" "$b_p99"
  echo "$s_rps $s_p99 $b_rps $b_p99" >>"$work/rounds"
done

# wrk counts only completed responses; every one of them must be stored.
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from messages").fetchone()[0])' "$work/bench.db")
echo
echo "202 answers counted by wrk (plus the first check): $sent; messages stored: $stored"
[ "$stored" -ge "$sent" ] || { echo "bench-mailsend: fewer messages stored than accepted" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
s_rps=$(awk '{print $1}' "$work/rounds" | median); s_p99=$(awk '{print $2}' "$work/rounds" | median)
b_rps=$(awk '{print $3}' "$work/rounds" | median); b_p99=$(awk '{print $4}' "$work/rounds" | median)
ratio=$(awk '{printf "%.1f\n", 100*$1/$3}' "$work/rounds" | median)
echo
echo "median of $rounds rounds, ${secs}s each, $conns connections, wrk on CPU $load_cpu, servers on CPU $server_cpu:"
echo "| server | 202/s | p99 latency (ms) |"
echo "| --- | ---: | ---: |"
echo "| sealpost, SQLite, stored before 202 | $s_rps | $s_p99 |"
echo "| bare net/http, nothing stored | $b_rps | $b_p99 |"
echo "| ratio (median of the rounds' ratios) | $ratio % | |"
