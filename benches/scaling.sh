#!/usr/bin/env bash
# Worker scaling of the edge: --workers 1 against --workers 2 (or WORKERS="1 2 4 8 16" on a
# bigger machine), two tunnels placed one per worker (`sluice-loadgen tunnels --place`, so the
# kernel's SO_REUSEPORT hash cannot put both on one worker), alternating the edges in rounds:
# bulk with 2 connections (one per tunnel) and connect rate over the 2 host names.
# Prints the report (ratios to the first edge) and keeps the JSON in benches/results/scaling.jsonl.
# Usage: benches/scaling.sh   (ROUNDS=3; LOAD_CPUS=0,1 pins the load generator)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-"1 2"}
LOAD_CPUS=${LOAD_CPUS:-}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LG=$CARGO_TARGET_DIR/release/sluice-loadgen
SLUICE=$CARGO_TARGET_DIR/release/sluice
WORK=$(mktemp -d /tmp/sluice-scaling.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release -p sluice -p sluice-loadgen 2>&1 | tail -1 >&2
cd "$WORK"
"$LG" keygen > keys.txt
cpus=()
[ -n "$LOAD_CPUS" ] && cpus=(--cpus "$LOAD_CPUS")
declare -A TARGET EDGE_PID
for w in $WORKERS; do
    read -r p a <<< "$("$LG" free-ports 2 | tr '\n' ' ')"
    "$SLUICE" edge --fernet-keys keys.txt --listen "127.0.0.1:$p" --admin "127.0.0.1:$a" --workers "$w" > "edge$w.log" 2>&1 &
    EDGE_PID[$w]=$!
    PIDS+=("$!")
    sleep 0.5
    place=$(seq -s, 0 $((w > 1 ? 1 : 0)))
    "$LG" tunnels --tunnel-edge "127.0.0.1:$p" --fernet-keys keys.txt --tunnels 2 --place "$place" \
        --admin "127.0.0.1:$a" --ready-file "ready$w" --duration 3600 "${cpus[@]}" > "tunnels$w.log" 2>&1 &
    PIDS+=("$!")
    TARGET[$w]=127.0.0.1:$p
done
for w in $WORKERS; do
    for _ in $(seq 300); do [ -f "ready$w" ] && break; sleep 0.1; done
done
for ((r = 1; r <= ROUNDS; r++)); do
    for w in $WORKERS; do
        echo "round $r: $w worker(s) ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
        "$LG" bulk --target "${TARGET[$w]}" --conns 2 --host-count 2 --size 2147483648 "${cpus[@]}" \
            --label "edge-${w}w" --case scaling-bulk-2conns --watch "proxy=${EDGE_PID[$w]}" --quiet --json
        "$LG" connect --target "${TARGET[$w]}" --host-count 2 --concurrency 64 --duration 5 "${cpus[@]}" \
            --label "edge-${w}w" --case scaling-connect --watch "proxy=${EDGE_PID[$w]}" --quiet --json
    done
done > scaling.jsonl
mkdir -p "$ROOT/benches/results"
cp scaling.jsonl "$ROOT/benches/results/scaling.jsonl"
"$LG" report scaling.jsonl --baseline "edge-$(echo "$WORKERS" | cut -d' ' -f1)w"
