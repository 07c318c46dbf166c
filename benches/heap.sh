#!/usr/bin/env bash
# Live heap of a fresh edge through `sluice-loadgen scale`: every 3 s, glibc's "in use" bytes
# (malloc_stats, called with gdb) and VmRSS. The plateaus are: before any tunnel, with T idle
# tunnels, with C idle channels spread over them; the differences divided by T and C are the
# live bytes per tunnel and per channel. RSS also counts memory freed but kept by glibc.
# Usage: benches/heap.sh   (T=4000 C=8000 SETTLE=10; needs gdb)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
S=$CARGO_TARGET_DIR/release/sluice
LG=$CARGO_TARGET_DIR/release/sluice-loadgen
T=${T:-4000}
C=${C:-8000}
command -v gdb > /dev/null || { echo "gdb is missing" >&2; exit 1; }
cargo build --release -p sluice -p sluice-loadgen 2>&1 | tail -1 >&2

W=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null; sleep 0.3; rm -rf "$W"' EXIT
EPORT=$("$LG" free-ports 1)
"$S" token new-key > "$W/keys.txt"
SLUICE_LOG=warn "$S" edge --fernet-keys "$W/keys.txt" --listen "127.0.0.1:$EPORT" --workers 2 \
    > "$W/edge.out" 2> "$W/edge.err" &
EPID=$!
sleep 0.5
(cd "$W" && timeout 600 "$LG" scale --target "127.0.0.1:$EPORT" --tunnel-edge "127.0.0.1:$EPORT" \
    --fernet-keys keys.txt --hosts 's{}.bench.test' --host-count "$T" --tunnels "$T" \
    --channels "$C" --settle "${SETTLE:-10}" --watch "proxy=$EPID" --quiet > "$W/lg.out" 2>&1) &
LGPID=$!
echo "seconds  heap_in_use_bytes  rss_kib"
START=$(date +%s)
while kill -0 "$LGPID" 2> /dev/null; do
    gdb -p "$EPID" -batch -ex 'call (void)malloc_stats()' > /dev/null 2>&1
    printf '%7d  %17s  %7s\n' $(($(date +%s) - START)) \
        "$(grep -a 'in use bytes' "$W/edge.err" | tail -1 | awk '{print $NF}')" \
        "$(awk '/VmRSS/ {print $2}' "/proc/$EPID/status")"
    sleep 3
done
grep -E 'per_|_up' "$W/lg.out"
