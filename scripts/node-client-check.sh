#!/usr/bin/env bash
# Starts sealpost on a fresh SQLite database and drives it with SendGrid's
# official Node clients (@sendgrid/client and @sendgrid/mail, installed from
# npm into a temp dir); then has @sendgrid/mail send attachments through
# sealpost to a fake MX (TestAttachmentsWithOfficialNodeClient), which
# checks that the files arrive as they were. check.js also reads the
# message back through the Email Activity API.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/sealpost" ./cmd/sealpost
if ! (cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund @sendgrid/client@8 @sendgrid/mail@8 >/dev/null 2>&1); then
  echo "node-client-check: SKIPPED: could not install @sendgrid/client and @sendgrid/mail from npm"
  exit 0
fi
port=$((20000 + RANDOM % 20000))
"$work/sealpost" serve --http-addr "127.0.0.1:$port" --database "sqlite:$work/sealpost.db" >"$work/key" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/key" ] && curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
cp scripts/node-client/check.js "$work/"
SENDGRID_API_KEY=$(head -n1 "$work/key") SEALPOST_URL="http://127.0.0.1:$port/" node "$work/check.js"
SEALPOST_NODE_MODULES="$work/node_modules" go test -count=1 -run 'TestAttachmentsWithOfficialNodeClient$' ./cmd/sealpost
