#!/usr/bin/env bash
# Delivery rate of sealpost beside Postfix, on one machine, in one run, on
# loopback only. Both relay the same messages to the same receiving Postfix,
# under the same policy: verified certificate (a test CA made here with
# openssl) and TLS 1.3 at least.
#
#   receiver  Postfix instance on 127.0.0.10:$PORT, certificate for
#             mx.bench.test from the test CA, TLS 1.3 offered; accepts
#             bench.test and d1..dN.bench.test and discards every message
#             at the end of its DATA. Messages are counted in its log. Its
#             queue is on tmpfs (/dev/shm), so that it keeps up with either.
#   postfix   a second Postfix instance (its own config and queue directories,
#             started with postfix -c DIR) on 127.0.0.11:$PORT+1, fed by
#             smtp-source, relaying with smtp_tls_security_level = verify and
#             TLS >= 1.3. Its transport_maps send every bench domain to
#             [127.0.0.10]:$PORT (no DNS: Postfix asks the system resolver,
#             which cannot be pointed at a test server without changing the
#             system's configuration); the policy table matches the
#             certificate against mx.bench.test.
#   sealpost  sealpost serve (built here), fed by POST /v3/mail/send (one
#             request per message, bench/postfixbench send), delivering with
#             require_valid_cert and TLS 1.3 (set through the API). MX and A
#             records come from bench/postfixbench dns (every bench domain:
#             MX mx.bench.test, A 127.0.0.10) through --dns-server: sealpost
#             resolves as in production, which costs it a little more than
#             Postfix's transport table. Its Event Webhook poster runs, as
#             deployed; the account has no webhook, so no event is queued
#             for it (Email Activity keeps them all).
#
# Each case sends N messages of about 2 KB, to bench.test, then spread over
# DOMAINS domains (d1.bench.test ...); the rate is N divided by the time from
# the start of injection until the receiver's log shows the Nth message
# discarded (polled every 50 ms). Both senders drop idle sessions after 2 s
# and each case waits 3 s first, so none starts on sessions opened before.
# The table gives both rates and sealpost's ratio to Postfix (the median of
# each round's pair: sealpost runs right after Postfix in every round).
#
# CPU per message: each party runs in a cgroup of its own (cpuacct, or
# cgroup v2's cpu.stat), so each case also gives the CPU time, per message,
# of the sender under test (the sending Postfix instance with all its
# processes; sealpost with its DNS server), of the receiver and of the load
# client (smtp-source; postfixbench send), from the start of injection until
# the receiver has the last message. On a machine whose cores are all busy,
# the receiver's share caps both rates; these columns compare the senders
# themselves, and the last one gives, per round, the CPU of Postfix with
# smtp-source over that of sealpost with its load client (the median of the
# rounds). Without a writable cgroup hierarchy they read n/a.
#
# Postfix comes from Debian: apt-get installs it if it is missing (root only).
# The system's own Postfix instance (/etc/postfix) is neither configured nor
# started; if it runs, it is left alone (the instances here listen on their
# own addresses and ports). Everything started here is stopped on exit.
#
#   usage: scripts/bench-vs-postfix.sh            (N=2000, DOMAINS=50)
#          N=200 scripts/bench-vs-postfix.sh      (quick check of the script)
# Environment: N, DOMAINS, ROUNDS (default 1), PORT (2525), CONCURRENCY
# (deliveries at once, both MTAs: 16), SEALPOST_PER_DOMAIN (sealpost's
# --smtp-max-per-domain: CONCURRENCY), INJECT_CONNS (HTTP connections of the
# sealpost load client, and smtp-source sessions: 16), POSTFIX_TLS_REUSE
# (smtp_tls_connection_reuse: yes), SESSION_MAX (sealpost
# --smtp-session-max-messages: 100), KEEP_WORK=1 (keep the temporary
# directory, logs included), MTAS (which senders run: "postfix sealpost";
# "sealpost" alone times only sealpost, for tuning: Postfix's columns and
# the ratio then read 0; "direct" adds smtp-source straight into the
# receiver, without TLS: the receiver's own ceiling on this machine),
# CASES (the recipient-domain counts to run: "1 $DOMAINS"). SEALPOST_*
# variables reach sealpost serve.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${N:-2000}
domains=${DOMAINS:-50}
rounds=${ROUNDS:-1}
port=${PORT:-2525}
sender_port=$((port + 1))
concurrency=${CONCURRENCY:-16}
per_domain=${SEALPOST_PER_DOMAIN:-$concurrency}
inject_conns=${INJECT_CONNS:-16}
tls_reuse=${POSTFIX_TLS_REUSE:-yes}
session_max=${SESSION_MAX:-100}
recv_ip=127.0.0.10
send_ip=127.0.0.11
dns_addr=127.0.0.1:15353
http_addr=127.0.0.1:18095
msg_size=2048

log() { echo "bench-vs-postfix: $*" >&2; }
die() { log "$*"; exit 1; }

if ! command -v smtp-source >/dev/null || ! [ -x /usr/sbin/postfix ]; then
  [ "$(id -u)" = 0 ] || die "Postfix is not installed, and installing it needs root"
  log "installing Postfix from Debian"
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq postfix >/dev/null
fi
command -v openssl >/dev/null || die "openssl is required"
[ "$(id -u)" = 0 ] || die "the Postfix instances must be started as root"

work=$(mktemp -d /tmp/bench-vs-postfix.XXXXXX)
chmod 755 "$work"
pids=()
instances=()
cg=""
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for d in "${instances[@]}"; do postfix -c "$d" stop >/dev/null 2>&1; done
  wait 2>/dev/null
  if [ -n "$cg" ]; then
    for _ in $(seq 50); do rmdir "$cg"/* "$cg" 2>/dev/null && break; sleep 0.1; done
  fi
  [ -n "${shm:-}" ] && rm -rf "$shm"
  [ -n "${KEEP_WORK:-}" ] && log "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Test CA and the receiver's certificate ---
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=sealpost bench test CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=mx.bench.test" -keyout mx-key.pem -out mx.csr 2>/dev/null
  printf 'subjectAltName=DNS:mx.bench.test,IP:%s\nextendedKeyUsage=serverAuth\n' "$recv_ip" >mx.ext
  openssl x509 -req -in mx.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -extfile mx.ext -out mx.pem 2>/dev/null
  chmod 644 ca.pem mx.pem
  chmod 600 mx-key.pem
)

# --- A cgroup per party, for its CPU time ---
cg_groups="receiver postfix sealpost client"
cg_file=""
if [ -w /sys/fs/cgroup/cpuacct ] && mkdir "/sys/fs/cgroup/cpuacct/bench-vs-postfix.$$" 2>/dev/null; then
  cg=/sys/fs/cgroup/cpuacct/bench-vs-postfix.$$ cg_file=cpuacct.usage
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && mkdir "/sys/fs/cgroup/bench-vs-postfix.$$" 2>/dev/null; then
  cg=/sys/fs/cgroup/bench-vs-postfix.$$ cg_file=cpu.stat
fi
if [ -n "$cg" ]; then
  for g in $cg_groups; do mkdir "$cg/$g"; done
else
  log "no writable cgroup hierarchy: the CPU columns read n/a"
fi
# cg_exec becomes a command in a party's cgroup: everything it starts (a
# Postfix master and its daemons) stays there. In a subshell started with
# &, $! is then the command's own pid. in_cg runs a command so, and waits.
cg_exec() { # group command [args...]
  [ -z "$cg" ] || echo "$BASHPID" >"$cg/$1/cgroup.procs"
  shift
  exec "$@"
}
in_cg() { (cg_exec "$@"); } # group command [args...]
# cpu_ns prints a party's CPU time so far in nanoseconds.
cpu_ns() { # group
  case "$cg_file" in
    cpuacct.usage) cat "$cg/$1/cpuacct.usage" ;;
    cpu.stat) awk '$1 == "usage_usec" {print $2 * 1000}' "$cg/$1/cpu.stat" ;;
    *) echo 0 ;;
  esac
}
cpu_snapshot() { local g; for g in $cg_groups; do printf '%s ' "$(cpu_ns "$g")"; done; }
# cpu_per_msg prints one party's CPU ms per message between two snapshots.
cpu_per_msg() { # index before after
  [ -n "$cg" ] || { echo n/a; return; }
  awk -v i="$1" -v b="$2" -v a="$3" -v n="$n" 'BEGIN {split(b, x, " "); split(a, y, " "); printf "%.3f", (y[i] - x[i]) / 1e6 / n}'
}

domain_list="bench.test"
for i in $(seq "$domains"); do domain_list="$domain_list d$i.bench.test"; done

# master.cf of an instance: the services it needs, none chrooted (the queue
# directories here are not set up as chroot jails), smtpd on one address only.
master_cf() { # listen-address
  cat <<EOF
$1 inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
tlsproxy unix - - n - 0 tlsproxy
EOF
}

common_main_cf() { # dir hostname queue-dir
  cat <<EOF
compatibility_level = 3.6
config_directory = $1
queue_directory = $3
data_directory = $1/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $2
mydomain = bench.test
myorigin = \$myhostname
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
maillog_file = $1/maillog
maillog_file_prefixes = $1
# Postfix refuses inet_interfaces it finds on no interface (127.0.0.10 is
# only routed to lo); master.cf binds the smtpd to its address instead.
inet_interfaces = loopback-only
biff = no
EOF
}

start_instance() { # dir cgroup
  mkdir -p "$1/data" "$(postconf -c "$1" -h queue_directory)"
  cp /etc/postfix/dynamicmaps.cf "$1/" 2>/dev/null || true
  chown postfix "$1/data"
  # Postfix writes its fatal errors to a terminal only, hence script(1).
  script -qec "postfix -c $1 check" /dev/null >"$1/check.log" 2>&1 || { cat "$1/check.log" >&2; die "postfix check failed for $1"; }
  in_cg "$2" postfix -c "$1" start >"$1/start.log" 2>&1 || { cat "$1/start.log" >&2; die "postfix did not start in $1"; }
  instances+=("$1")
}

# --- Receiving Postfix ---
recv=$work/recv
mkdir -p "$recv"
# The receiver is not what is measured: its queue is on tmpfs, where its
# fsyncs cost nothing, so that it keeps up with either sender.
shm=$(mktemp -d /dev/shm/bench-vs-postfix.XXXXXX)
chmod 755 "$shm"
{
  common_main_cf "$recv" mx.bench.test "$shm"
  cat <<EOF
relay_domains = $domain_list
default_transport = discard:bench
relay_transport = discard:bench
local_transport = discard:bench
# A sink, not a relay: every message is discarded once its final dot is in
# (logged as "discard: END-OF-MESSAGE", which is what is counted), so that no
# queue manager or delivery agent runs for it; and arrivals are never slowed
# (in_flow_delay, 1 s by default, paces arrivals to the receiver's own
# deliveries). With Postfix's defaults the receiver itself took at most
# ~800 messages a second here (the "direct" case below shows it) and capped
# both senders.
smtpd_end_of_data_restrictions = check_client_access static:DISCARD
in_flow_delay = 0
receive_override_options = no_address_mappings, no_header_body_checks, no_unknown_recipient_checks, no_milters
smtpd_tls_security_level = may
smtpd_tls_chain_files = $work/mx-key.pem, $work/mx.pem
smtpd_tls_loglevel = 1
EOF
} >"$recv/main.cf"
master_cf "$recv_ip:$port" >"$recv/master.cf"
start_instance "$recv" receiver

# --- Sending Postfix ---
snd=$work/send
mkdir -p "$snd"
: >"$snd/transport"
for d in $domain_list; do printf '%s smtp:[%s]:%s\n' "$d" "$recv_ip" "$port" >>"$snd/transport"; done
printf '[%s]:%s verify match=mx.bench.test protocols=>=TLSv1.3\n' "$recv_ip" "$port" >"$snd/tls_policy"
{
  common_main_cf "$snd" sender.bench.test "$snd/queue"
  cat <<EOF
relay_domains =
transport_maps = texthash:$snd/transport
# Anything not a bench domain fails here rather than leave loopback.
default_transport = error:5.7.1 bench: only bench domains are relayed
relay_transport = \$default_transport
smtp_tls_security_level = verify
smtp_tls_mandatory_protocols = >=TLSv1.3
smtp_tls_protocols = >=TLSv1.3
smtp_tls_CAfile = $work/ca.pem
smtp_tls_policy_maps = texthash:$snd/tls_policy
smtp_tls_loglevel = 1
smtp_tls_connection_reuse = $tls_reuse
smtp_connection_cache_on_demand = yes
default_destination_concurrency_limit = $concurrency
smtp_destination_concurrency_limit = $concurrency
smtp_dns_support_level = disabled
EOF
} >"$snd/main.cf"
master_cf "$send_ip:$sender_port" >"$snd/master.cf"
start_instance "$snd" postfix

# --- sealpost and its DNS ---
CGO_ENABLED=0 go build -o "$work/sealpost" ./cmd/sealpost
CGO_ENABLED=0 go build -o "$work/postfixbench" ./bench/postfixbench
(cg_exec sealpost "$work/postfixbench" dns -addr "$dns_addr" -mx-ip "$recv_ip" -zone bench.test) 2>"$work/dns.log" &
pids+=($!)
(cg_exec sealpost "$work/sealpost" serve --http-addr "$http_addr" --database "sqlite:$work/sealpost.db" \
  --allow-destinations 127.0.0.0/8 --dns-server "$dns_addr" --smtp-port "$port" \
  --tls-ca-file "$work/ca.pem" --helo-hostname sender.bench.test \
  --delivery-workers "$concurrency" --smtp-max-per-domain "$per_domain" \
  --smtp-session-max-messages "$session_max" --smtp-session-idle 2s \
  --mail-send-rate-limit 100000000 --log-level warn) \
  >"$work/key" 2>"$work/sealpost.log" &
pids+=($!)
for _ in $(seq 200); do
  [ -s "$work/key" ] && curl -fs -o /dev/null "http://$http_addr/v3/user/settings/enforced_tls" -H "Authorization: Bearer $(head -n1 "$work/key")" && break
  sleep 0.1
done
key=$(head -n1 "$work/key")
[ -n "$key" ] || { cat "$work/sealpost.log" >&2; die "sealpost printed no key"; }
code=$(curl -s -o "$work/patch.out" -w '%{http_code}' -X PATCH "http://$http_addr/v3/user/settings/enforced_tls" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"require_tls":true,"require_valid_cert":true,"version":1.3}')
[ "$code" = 200 ] || { cat "$work/patch.out" >&2; die "enforced_tls PATCH answered $code"; }

# --- Measuring ---
received() { grep -c ': discard: END-OF-MESSAGE' "$recv/maillog" 2>/dev/null || true; }
tls_sessions() { grep -c 'TLS connection established from' "$recv/maillog" 2>/dev/null || true; }

# Waits until the receiver has discarded $1 messages in all, and prints the
# time it saw the last one (Unix seconds). Postfix's log has whole seconds
# only, so the log is polled: the time is late by at most the poll interval.
wait_received() { # total timeout-seconds
  local deadline=$((SECONDS + $2))
  while [ "$(received)" -lt "$1" ]; do
    [ $SECONDS -lt $deadline ] || die "receiver got $(received) of $1 messages in $2 s"
    sleep 0.05
  done
  date +%s.%N
}

# inject sends N messages with smtp-source to address, over INJECT_CONNS
# sessions: to bench.test for one domain; else, since smtp-source sends to
# one recipient, INJECT_CONNS lanes each run one single-session
# smtp-source per domain of its share in turn.
inject() { # domains address
  local ndom=$1 addr=$2 jobs=() lanes lane i per
  if [ "$ndom" = 1 ]; then
    in_cg client smtp-source -s "$inject_conns" -m "$n" -l "$msg_size" -f sender@sender.test -t rcpt@bench.test "$addr"
    return
  fi
  lanes=$(( inject_conns < ndom ? inject_conns : ndom ))
  for lane in $(seq "$lanes"); do
    (
      for i in $(seq "$lane" "$lanes" "$ndom"); do
        per=$(( n / ndom + (i <= n % ndom ? 1 : 0) ))
        [ "$per" -gt 0 ] || continue
        in_cg client smtp-source -s 1 -m "$per" -l "$msg_size" -f sender@sender.test -t "rcpt@d$i.bench.test" "$addr"
      done
    ) &
    jobs+=($!)
  done
  for j in "${jobs[@]}"; do wait "$j" || die "smtp-source failed"; done
}

run_postfix() { inject "$1" "$send_ip:$sender_port"; } # domains

# Not a sender under test: smtp-source straight into the receiver, without
# TLS or a queue of its own, shows how many messages a second the receiver
# itself can take on this machine, the ceiling of both columns.
run_direct() { inject "$1" "$recv_ip:$port"; } # domains

run_sealpost() { # domains
  in_cg client "$work/postfixbench" send -url "http://$http_addr" -key "$key" -n "$n" -domains "$1" -conns "$inject_conns" -size "$msg_size" >/dev/null
}

# the kernel page cache and Postfix's processes warm alike for both.
log "warming up"
base=$(received)
in_cg client smtp-source -s 4 -m 50 -l "$msg_size" -f sender@sender.test -t rcpt@bench.test "$send_ip:$sender_port"
in_cg client "$work/postfixbench" send -url "http://$http_addr" -key "$key" -n 50 -domains 1 -conns 4 -size "$msg_size" >/dev/null
wait_received $((base + 100)) 120 >/dev/null

timeout=$((120 + n / 5))
load0=$(cut -d' ' -f1-3 /proc/loadavg)
printf '%-6s %-8s %-9s %12s %10s %10s %14s %12s %12s %12s\n' round domains mta injected_s seconds msgs/s tls_sessions \
  cpu_sender cpu_receiver cpu_client >&2
for r in $(seq "$rounds"); do
  for ndom in ${CASES:-1 $domains}; do
    for mta in ${MTAS:-postfix sealpost}; do
      # Both MTAs drop idle sessions after 2 s (Postfix's
      # smtp_connection_cache_time_limit default, sealpost's
      # --smtp-session-idle here): each case starts with none open.
      sleep 3
      base=$(received); tls0=$(tls_sessions)
      cpu0=$(cpu_snapshot)
      start=$(date +%s.%N)
      run_"$mta" "$ndom"
      injected=$(date +%s.%N)
      end=$(wait_received $((base + n)) "$timeout")
      cpu1=$(cpu_snapshot)
      # CPU ms per message: the sender under test (none in the direct
      # case), the receiver, the load client.
      case $mta in
        postfix) csend=$(cpu_per_msg 2 "$cpu0" "$cpu1") ;;
        sealpost) csend=$(cpu_per_msg 3 "$cpu0" "$cpu1") ;;
        *) csend=- ;;
      esac
      crecv=$(cpu_per_msg 1 "$cpu0" "$cpu1")
      cclient=$(cpu_per_msg 4 "$cpu0" "$cpu1")
      tls=$(( $(tls_sessions) - tls0 ))
      secs=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f", e - s}')
      isecs=$(awk -v s="$start" -v e="$injected" 'BEGIN {printf "%.2f", e - s}')
      rate=$(awk -v s="$secs" -v n="$n" 'BEGIN {printf "%.0f", n / s}')
      printf '%-6s %-8s %-9s %12s %10s %10s %14s %12s %12s %12s\n' "$r" "$ndom" "$mta" "$isecs" "$secs" "$rate" "$tls" \
        "$csend" "$crecv" "$cclient" >&2
      echo "$r $ndom $mta $rate $tls $csend $crecv $cclient" >>"$work/results"
    done
  done
done

# The receiver must have seen only verified TLS 1.3 from both senders.
if grep 'TLS connection established from' "$recv/maillog" | grep -qv 'TLSv1.3'; then
  die "a sender connected to the receiver without TLS 1.3"
fi
if grep -q 'connect from' "$recv/maillog" && [ "$(grep -c ' connect from' "$recv/maillog")" -gt "$(tls_sessions)" ]; then
  log "note: some sessions to the receiver did not use TLS (the direct case's, or warm-up probes)"
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# round_ratio CASE EXPR A B: the median over the rounds of case CASE of
# A's figure over B's, the figure being EXPR (awk, over a results line; a
# figure that reads n/a counts as none). Each round's sealpost case ran
# right after its Postfix case: pairing them cancels much of the drift of
# a shared machine.
round_ratio() {
  awk -v d="$1" -v a="$3" -v b="$4" '$2==d {v[$1 " " $3]='"$2"'; rounds[$1]=1}
    END {for (r in rounds) if (v[r " " a] > 0 && v[r " " b] > 0) printf "%.2f\n", v[r " " a] / v[r " " b]}' "$work/results" |
    median | awk '{printf "%.2f", $1}'
}
echo
echo "N=$n messages of ~2 KB per case, $rounds round(s); deliveries at once: $concurrency (Postfix destination concurrency limit; sealpost --delivery-workers, --smtp-max-per-domain $per_domain); Postfix smtp_tls_connection_reuse=$tls_reuse; sealpost --smtp-session-max-messages $session_max"
echo
echo "Load average at the start: $load0; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| recipient domains | Postfix msgs/s | sealpost msgs/s | ratio (median of the rounds' ratios) | TLS sessions at the receiver (Postfix / sealpost) | receiver alone msgs/s (direct, no TLS) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for ndom in ${CASES:-1 $domains}; do
  p=$(awk -v d="$ndom" '$2==d && $3=="postfix" {print $4}' "$work/results" | median)
  s=$(awk -v d="$ndom" '$2==d && $3=="sealpost" {print $4}' "$work/results" | median)
  pt=$(awk -v d="$ndom" '$2==d && $3=="postfix" {print $5}' "$work/results" | median)
  st=$(awk -v d="$ndom" '$2==d && $3=="sealpost" {print $5}' "$work/results" | median)
  ratio=$(round_ratio "$ndom" '$4' sealpost postfix)
  dr=$(awk -v d="$ndom" '$2==d && $3=="direct" {print $4}' "$work/results" | median)
  grep -q " $ndom direct " "$work/results" || dr="not run"
  echo "| $ndom | $p | $s | ${ratio}× | $pt / $st | $dr |"
done
echo
echo "CPU per message, in ms (medians of the rounds), from the start of injection until the receiver had the last message:"
echo
echo "| recipient domains | Postfix (all its processes) | sealpost (with its DNS server) | receiver, Postfix's case / sealpost's | load client, smtp-source / postfixbench send | CPU ratio, sender with its load client: Postfix's over sealpost's |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for ndom in ${CASES:-1 $domains}; do
  col() { awk -v d="$ndom" -v m="$1" -v f="$2" '$2==d && $3==m && $f != "n/a" {print $f}' "$work/results" | median; }
  # What each sender costs apart from the receiver they share.
  cratio=$(round_ratio "$ndom" '$6 + $8' postfix sealpost)
  if [ -z "$cg" ]; then
    echo "| $ndom | n/a | n/a | n/a | n/a | n/a |"
  else
    echo "| $ndom | $(col postfix 6) | $(col sealpost 6) | $(col postfix 7) / $(col sealpost 7) | $(col postfix 8) / $(col sealpost 8) | ${cratio}× |"
  fi
done
