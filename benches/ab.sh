#!/usr/bin/env bash
# A/B of two `sluice` binaries on one path: browsers -> edge -> connector -> origin, the
# binaries alternating inside each round. Modes: `raw` and `tls`, one bulk download each
# (throughput, CPU seconds per GB of edge plus connector); `rr`, 1 KiB requests and answers over
# 100 connections, closed loop (requests per second, CPU microseconds per request of edge plus
# connector: the direction towards the home server is exercised as much as the other).
# Usage: benches/ab.sh BEFORE_SLUICE AFTER_SLUICE   (ROUNDS=3 DUR=8 MODES="raw tls")
# e.g.:  git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release -p sluice)
#        benches/ab.sh /tmp/before/target/release/sluice target/release/sluice
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LG=$CARGO_TARGET_DIR/release/sluice-loadgen
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8}
MODES=${MODES:-raw tls}
[ $# = 2 ] || { sed -n 2,7p "$0"; exit 2; }
cargo build --release -p sluice-loadgen 2>&1 | tail -1 >&2

# one SLUICE MODE: a fresh origin, edge and connector, one download, the two figures.
one() {
    local s=$1 mode=$2 w tls=() eport ep cp origin i
    w=$(mktemp -d)
    [ "$mode" = tls ] && tls=(--tls)
    "$LG" origin "${tls[@]}" --addr-file "$w/origin.addr" --duration 600 > "$w/origin.log" 2>&1 &
    local pids=($!)
    for ((i = 0; i < 50; i++)); do [ -s "$w/origin.addr" ] && break; sleep 0.1; done
    origin=$(cat "$w/origin.addr")
    eport=$("$LG" free-ports 1)
    "$s" token new-key > "$w/keys"
    "$s" token issue --fernet-keys "$w/keys" --hostname h.bench.test --protocol-version 2 \
        --out "$w/creds.json" > /dev/null 2>&1
    SLUICE_LOG=warn "$s" edge --fernet-keys "$w/keys" --listen "127.0.0.1:$eport" --workers 2 \
        > "$w/edge.log" 2>&1 &
    ep=$!
    pids+=("$ep")
    sleep 0.5
    SLUICE_LOG=warn "$s" connect --edge "127.0.0.1:$eport" --credentials "$w/creds.json" \
        --to "$origin" > "$w/conn.log" 2>&1 &
    cp=$!
    pids+=("$cp")
    sleep 1.5
    if [ "$mode" = rr ]; then
        timeout 120 "$LG" latency --target "127.0.0.1:$eport" --hosts h.bench.test \
            --host-count 1 --conns 100 --size 1024 --rate 0 --duration "$DUR" \
            --watch "proxy=$ep" --watch "proxy=$cp" --quiet 2>&1 |
            awk -v dur="$DUR" '$1 == "req_per_s" {r = $2} $1 == "cpu_s.proxy" {c = $2}
                END {if (r > 0) printf "req_per_s %.0f  cpu_us_per_req.proxy %.2f  ", r, c * 1e6 / (r * dur)}' || true
    else
        timeout 120 "$LG" bulk "${tls[@]}" --target "127.0.0.1:$eport" --hosts h.bench.test \
            --host-count 1 --conns 1 --size 100000000000 --duration "$DUR" \
            --watch "proxy=$ep" --watch "proxy=$cp" --quiet 2>&1 |
            awk '/gbit_s|cpu_s_per_gb.proxy/ {printf "%s %s  ", $1, $2}' || true
    fi
    kill "${pids[@]}" 2> /dev/null || true
    wait 2> /dev/null || true
    rm -rf "$w"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for mode in $MODES; do
        for side in A B; do
            bin=$1
            [ "$side" = B ] && bin=$2
            printf 'round %d %-3s %s: %s\n' "$r" "$mode" "$side" "$(one "$bin" "$mode")"
        done
    done
done
