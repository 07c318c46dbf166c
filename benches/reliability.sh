#!/usr/bin/env bash
# Issue 10's figures on a release build, each against a fresh `sluice edge --workers 2`:
#   stalled  100 browsers ask for 64 MiB and never read, a probe of the same host every 100 ms
#            (protocol 2, then protocol 0): the probe's latency, the edge's queued bytes and RSS
#   memory   a burst (8 tunnels x 50 browsers that never read a 64 MiB download), then RSS
#            every 5 s for a minute, with the trimmer on and off (--no-trim-memory)
#   soak     SOAK_SECS (default 1800) of mixed traffic; fails if fds, RSS, channels or tunnels
#            trend upward
# Usage: benches/reliability.sh stalled|memory|soak
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
S=$CARGO_TARGET_DIR/release/sluice
LG=$CARGO_TARGET_DIR/release/sluice-loadgen
[ $# = 1 ] || { sed -n 2,10p "$0"; exit 2; }
cargo build --release -p sluice -p sluice-loadgen 2>&1 | tail -1 >&2

W=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2> /dev/null || true; wait 2> /dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
"$S" token new-key > "$W/keys"

# edge [FLAGS...]: starts a fresh edge; sets EDGE, ADMIN, EP.
edge() {
    local ports
    ports=($("$LG" free-ports 2))
    EDGE=127.0.0.1:${ports[0]}
    ADMIN=127.0.0.1:${ports[1]}
    SLUICE_LOG=warn "$S" edge --fernet-keys "$W/keys" --listen "$EDGE" --admin "$ADMIN" \
        --workers 2 "$@" > "$W/edge.log" 2>&1 &
    EP=$!
    PIDS+=("$EP")
    sleep 0.5
}

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

case $1 in
stalled)
    for proto in 2 0; do
        edge
        echo "protocol $proto:"
        "$LG" stalled --target "$EDGE" --admin "$ADMIN" --tunnels 1 --tunnel-edge "$EDGE" \
            --fernet-keys "$W/keys" --protocol "$proto" --stalled 100 --size 67108864 \
            --page 16384 --probe-every 100 --duration 15 --watch "edge=$EP" --quiet
        kill "$EP"
        wait "$EP" 2> /dev/null || true
    done
    ;;
memory)
    for mode in trim no-trim; do
        flags=()
        [ "$mode" = no-trim ] && flags=(--no-trim-memory)
        edge "${flags[@]}"
        sleep 2
        base=$(rss "$EP")
        for i in 0 1 2 3 4 5 6 7; do
            "$LG" stalled --target "$EDGE" --admin "$ADMIN" --tunnels 1 --tunnel-edge "$EDGE" \
                --fernet-keys "$W/keys" --hosts "m$i-{}.bench.test" --stalled 50 \
                --size 67108864 --probe-every 200 --duration 10 --json --quiet \
                > "$W/burst-$i.json" &
        done
        peak=0
        for _ in $(seq 1 12); do
            r=$(rss "$EP")
            [ "$r" -gt "$peak" ] && peak=$r
            sleep 1
        done
        wait $(jobs -p | grep -v "^$EP$") 2> /dev/null || true
        line="$mode: idle ${base} KiB, burst peak ${peak} KiB; after the burst:"
        for t in 5 10 15 20 25 30 35 40 45 50 55 60; do
            sleep 5
            line+=" ${t}s=$(rss "$EP")"
        done
        echo "$line KiB"
        curl -s "http://$ADMIN/metrics" | grep -E "^sluice_memory" || true
        kill "$EP"
        wait "$EP" 2> /dev/null || true
    done
    ;;
soak)
    edge
    "$LG" soak --target "$EDGE" --tunnel-edge "$EDGE" --fernet-keys "$W/keys" --admin "$ADMIN" \
        --watch "edge=$EP" --tunnels 8 --host-count 8 --duration "${SOAK_SECS:-1800}" \
        --sample-every 10 --quiet
    ;;
*)
    sed -n 2,10p "$0"
    exit 2
    ;;
esac
