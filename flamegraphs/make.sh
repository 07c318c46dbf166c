#!/usr/bin/env bash
# Records the Sluice edge under load with `perf record --call-graph dwarf` and renders
# flamegraphs with inferno, into flamegraphs/:
#   edge-bulk.svg      one raw download through the edge, the load generator as tunnel peer
#   edge-connect.svg   connect rate (hello, 64-byte answer, close) over 1000 tunnels
#   edge-connector-bulk.svg  the same download through edge and connector, both recorded
# Usage: flamegraphs/make.sh   (SECS=4 FREQ=999 by default)
# Needs perf (linux-perf) and inferno (installed with cargo into $TOOLS when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECS=${SECS:-4}
FREQ=${FREQ:-999}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TOOLS=${TOOLS:-$CARGO_TARGET_DIR/tools}
BIN=$CARGO_TARGET_DIR/release
LG=$BIN/sluice-loadgen
SLUICE=$BIN/sluice
DEST=$ROOT/flamegraphs
WORK=$(mktemp -d /tmp/sluice-flame.XXXXXX)
PIDS=()

log() { printf '[flamegraphs %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {
    local name=$1
    shift
    "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

wait_line() {
    local i
    for ((i = 0; i < ${3:-60} * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "timed out waiting for '$2' in $1"
    return 1
}

command -v perf > /dev/null || {
    log "perf is missing: apt-get install linux-perf"
    exit 1
}
if ! command -v inferno-flamegraph > /dev/null && [ ! -x "$TOOLS/bin/inferno-flamegraph" ]; then
    log "installing inferno into $TOOLS"
    cargo install inferno --root "$TOOLS" > /dev/null 2>&1
fi
export PATH=$TOOLS/bin:$PATH

log "building (release, with debug info)"
cargo build --release -p sluice -p sluice-loadgen 2>&1 | tail -1 >&2

cd "$WORK"
"$LG" keygen > keys.txt
read -r P_EDGE P_ADMIN <<< "$("$LG" free-ports 2 | tr '\n' ' ')"
EDGE=127.0.0.1:$P_EDGE
start origin "$LG" origin --addr-file origin.addr --duration 3600
wait_line origin.out LISTENING
start edge "$SLUICE" edge --fernet-keys keys.txt --listen "$EDGE" --admin "127.0.0.1:$P_ADMIN" --workers 2
PID_EDGE=$LAST_PID
sleep 1
start tunnels "$LG" tunnels --tunnel-edge "$EDGE" --fernet-keys keys.txt --tunnels 1000 --admin "127.0.0.1:$P_ADMIN" --duration 3600
wait_line tunnels.out READY 120
"$SLUICE" token issue --fernet-keys keys.txt --hostname craw.bench.test --out craw.json > /dev/null
start connector "$SLUICE" connect --edge "$EDGE" --credentials craw.json --to "$(cat origin.addr)"
PID_CONN=$LAST_PID
wait_line connector.err "tunnel connected" 30

# record NAME "PIDS" LOADGEN-ARGS...: perf on the PIDs while the load runs, then an SVG.
record() {
    local name=$1 pids=$2
    shift 2
    log "$name: load $*"
    "$LG" "$@" --target "$EDGE" --quiet --json > "$name.json" &
    local load=$!
    sleep 1
    perf record -F "$FREQ" --call-graph dwarf,16384 -p "$pids" -o "$name.data" -- sleep "$SECS" 2> /dev/null > /dev/null
    wait "$load" || true
    log "$name: rendering"
    perf script -i "$name.data" 2> /dev/null | inferno-collapse-perf > "$name.folded"
    inferno-flamegraph --title "$name ($(git -C "$ROOT" rev-parse --short HEAD))" < "$name.folded" > "$DEST/$name.svg"
    cp "$name.folded" "$DEST/$name.folded" 2> /dev/null || true
    gzip -f "$DEST/$name.folded"
    sed -n 's/.*"gbit_s":\([0-9.]*\).*/  gbit_s \1/p; s/.*"conn_per_s":\([0-9.]*\).*/  conn_per_s \1/p' "$name.json" >&2
}

record edge-bulk "$PID_EDGE" bulk --size 100000000000 --duration $((SECS + 2))
record edge-connect "$PID_EDGE" connect --host-count 1000 --concurrency 64 --duration $((SECS + 2))
record edge-connector-bulk "$PID_EDGE,$PID_CONN" bulk --hosts craw.bench.test --size 100000000000 --duration $((SECS + 2))
log "done: $(ls "$DEST"/*.svg | tr '\n' ' ')"
