#!/usr/bin/env bash
# Re-captures the real ClientHellos in this folder (see README.md).
#
#   ./capture.sh                 # every capture
#   ./capture.sh curl chromium   # just those
#
# Needs python3, curl, openssl and chromium; the rustls captures need RUSTLS_CAPTURE set to
# the throwaway client described in README.md (they are skipped without it).
# Each capture: capture_hello.py listens on 127.0.0.1 port 0, the client connects to it with
# the SNI below, and the listener saves the records of the first ClientHello as NAME.bin.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# NAME -> the client command; $PORT is replaced by the listener's port.
declare -A clients=(
  [curl]='curl -s --max-time 10 --resolve a.example.test:$PORT:127.0.0.1 https://a.example.test:$PORT/'
  [openssl-tls12]='openssl s_client -connect 127.0.0.1:$PORT -tls1_2 -servername home.example.net'
  [openssl-tls13]='openssl s_client -connect 127.0.0.1:$PORT -tls1_3 -servername a.example.test'
  [openssl-no-sni]='openssl s_client -connect 127.0.0.1:$PORT -noservername'
  [openssl-upper-dot]='openssl s_client -connect 127.0.0.1:$PORT -servername A.Example.TEST.'
  [openssl-tls10]='openssl s_client -connect 127.0.0.1:$PORT -tls1 -cipher DEFAULT:@SECLEVEL=0 -servername old.example.net'
  [rustls-aws-lc-rs-pq]='$RUSTLS_CAPTURE $PORT a.example.test aws-lc-rs'
  [rustls-ring]='$RUSTLS_CAPTURE $PORT home.example.net ring'
  [chromium]='chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$PROFILE --host-resolver-rules="MAP a.example.test 127.0.0.1" --dump-dom https://a.example.test:$PORT/'
)

capture() {
  local name=$1 tmp port client
  if [[ ${clients[$name]} == *RUSTLS_CAPTURE* && -z ${RUSTLS_CAPTURE:-} ]]; then
    echo "skip $name: RUSTLS_CAPTURE is not set" >&2
    return
  fi
  tmp=$(mktemp -d)
  python3 capture_hello.py --out "$name.bin" --port-file "$tmp/port" --timeout 30 &
  local listener=$!
  for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.1; done
  port=$(cat "$tmp/port")
  echo "capture $name on port $port" >&2
  PORT=$port PROFILE=$tmp/profile RUSTLS_CAPTURE=${RUSTLS_CAPTURE:-} \
    timeout 40 bash -c "${clients[$name]//\$PORT/$port}" </dev/null >/dev/null 2>&1 &
  client=$!
  wait "$listener"
  kill "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  rm -rf "$tmp"
}

if [[ $# -eq 0 ]]; then
  set -- "${!clients[@]}"
fi
for name in "$@"; do
  [[ -n ${clients[$name]:-} ]] || { echo "unknown capture $name" >&2; exit 2; }
  capture "$name"
done
