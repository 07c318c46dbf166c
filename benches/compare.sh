#!/usr/bin/env bash
# One side-by-side run of every scenario against every contender, alternating the
# contenders inside each round so that the machine's noise hits them all alike. Writes
# BENCHMARKS.md (and benches/results/latest.jsonl, the raw reports).
#
# Contenders (all on 127.0.0.1, ports found at run time):
#   direct                 browsers -> origin                                   (the limit)
#   nginx-1hop             browsers -> nginx stream ssl_preread -> origin
#   nginx-2hop             browsers -> nginx -> nginx (both ssl_preread) -> origin
#   snitun                 browsers -> SniTun 0.47.0 server -> SniTun 0.47.0 client -> origin
#   snitun-server          browsers -> SniTun 0.47.0 server -> loadgen tunnels (built-in origin)
#   sluice-edge            browsers -> sluice edge -> loadgen tunnels (built-in origin)
#   sluice-edge+connector  browsers -> sluice edge -> sluice connect -> origin
#   sluice-edge-1w         the edge with one worker (worker scaling rows)
#   sluice-edge-tuned-malloc  a prototype: the edge with GLIBC_TUNABLES keeping freed memory
#                          mapped (bulk and connect rows only; see flamegraphs/README.md)
#
# Usage: benches/compare.sh            (ROUNDS=3 DUR=5 by default; about 25 minutes)
#        ROUNDS=1 DUR=2 benches/compare.sh   (a quick look)
#        REPORT_ONLY=1 benches/compare.sh    (BENCHMARKS.md again from benches/results/, e.g.
#                                             after editing benches/compare-notes.md)
# Needs: cargo, python3 (>= 3.13 somewhere for SniTun 0.47.0; see src/testkit/src/peers.rs),
# nginx with the stream module (installed with apt-get when missing). Every process it starts
# is stopped by PID when it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
RAW_OUT=${RAW_OUT:-$ROOT/benches/results/latest.jsonl}
HEADER=${HEADER:-$ROOT/benches/results/latest-header.md}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release
LG=$BIN/sluice-loadgen
SLUICE=$BIN/sluice
PEERS=$ROOT/src/testkit/peers
WORK=$(mktemp -d /tmp/sluice-compare.XXXXXX)
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
PIDS=()
LAST_PID=

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    log "logs were in $WORK (removed)"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, logs to $WORK/NAME.{out,err}; PID in LAST_PID.
start() {
    local name=$1
    shift
    "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_line FILE PATTERN [SECONDS]
wait_line() {
    local i
    for ((i = 0; i < ${3:-60} * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "timed out waiting for '$2' in $1"
    return 1
}

GOALS=(
    "bulk-tls|sluice-edge+connector|mbyte_s|>=|1.1|bulk-tls|nginx-2hop|mbyte_s|bulk through edge and connector, TLS origin, vs two nginx hops"
    "bulk-tls|sluice-edge+connector|mbyte_s|>=|7|bulk-tls|snitun|mbyte_s|bulk through edge and connector, TLS origin, vs SniTun server and client"
    "bulk-raw|sluice-edge+connector|gbit_s|>=|0.35|bulk-raw|direct|gbit_s|bulk through edge and connector, raw bytes, vs direct"
    "bulk-raw|sluice-edge|gbit_s|>=|0.5|bulk-raw|direct|gbit_s|bulk through the edge alone (loadgen as tunnel peer) vs direct"
    "connect|sluice-edge|conn_per_s|>=|1.5|connect|nginx-1hop|conn_per_s|connect rate through the edge (1000 tunnels) vs one nginx hop"
    "connect|sluice-edge|conn_per_s|>=|10|connect|snitun-server|conn_per_s|connect rate through the edge vs the SniTun server, both with 1000 loadgen tunnels"
    "connect|sluice-edge+connector|conn_per_s|>=|10|connect|snitun|conn_per_s|connect rate through edge and connector vs SniTun server and client (one tunnel each)"
    "latency|sluice-edge|latency.p99|<=|1|latency|nginx-2hop|latency.p99|latency p99 through the edge vs two nginx hops (same rate)"
    "latency|sluice-edge+connector|latency.p99|<=|1|latency|nginx-2hop|latency.p99|latency p99 through edge and connector vs two nginx hops (same rate)"
    "scale|sluice-edge|rss_kib_per_tunnel.proxy|<=|2||||edge user-space memory per idle tunnel, KiB"
    "scale|sluice-edge|rss_kib_per_channel.proxy|<=|1||||edge user-space memory per idle channel, KiB"
)

render() {
    local goal_args=() g
    for g in "${GOALS[@]}"; do goal_args+=(--goal "$g"); done
    {
        cat "$HEADER"
        "$LG" report "$RAW_OUT" "${goal_args[@]}"
        if [ -f "$ROOT/benches/compare-notes.md" ]; then
            echo
            cat "$ROOT/benches/compare-notes.md"
        fi
    } > "$OUT"
    log "wrote $OUT"
}

# ---- build and tools -------------------------------------------------------------------
log "building (release)"
cargo build --release -p sluice -p sluice-loadgen 2>&1 | tail -1 >&2
if [ "${REPORT_ONLY:-0}" = 1 ]; then
    render
    exit 0
fi

if ! command -v nginx > /dev/null || [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
    log "installing nginx and its stream module"
    apt-get update -qq > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-stream > /dev/null
fi
NGINX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so

# SniTun 0.47.0: the testkit's venv (src/testkit/src/peers.rs makes it), else make one here.
SNITUN_CACHE=${SLUICE_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/snitun-peers}
SNITUN_PY=$SNITUN_CACHE/venv-0.47.0/bin/python
if ! "$SNITUN_PY" -c 'import snitun' 2>/dev/null; then
    log "setting up SniTun 0.47.0 in $SNITUN_CACHE/venv-0.47.0"
    cand=""
    for p in "${PEER047_PYTHON:-}" python3.13 python3 $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/*/bin/python3 2>/dev/null); do
        [ -n "$p" ] || continue
        if "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then
            cand=$p
            break
        fi
    done
    if [ -n "$cand" ]; then
        mkdir -p "$SNITUN_CACHE"
        "$cand" -m venv "$SNITUN_CACHE/venv-0.47.0" && "$SNITUN_CACHE/venv-0.47.0/bin/pip" install -q snitun==0.47.0 >&2 || true
    fi
fi
HAVE_SNITUN=0
"$SNITUN_PY" -c 'import snitun' 2>/dev/null && HAVE_SNITUN=1

# ---- the contenders --------------------------------------------------------------------
cd "$WORK"
"$LG" keygen > keys.txt
read -r P_NGX1 P_NGX2 P_NGXB P_EDGE P_ADMIN P_EDGE1 P_ADMIN1 P_EDGET P_ADMINT <<< "$("$LG" free-ports 9 | tr '\n' ' ')"

start origin-raw "$LG" origin --addr-file origin-raw.addr --duration 7200
PID_ORIGIN_RAW=$LAST_PID
start origin-tls "$LG" origin --tls --addr-file origin-tls.addr --duration 7200
PID_ORIGIN_TLS=$LAST_PID
wait_line origin-raw.out LISTENING
wait_line origin-tls.out LISTENING
ORIGIN_RAW=$(cat origin-raw.addr)
ORIGIN_TLS=$(cat origin-tls.addr)

nginx_conf() { # NAME "server blocks"
    cat > "$WORK/$1.conf" <<EOF
load_module $NGINX_STREAM;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
events { worker_connections 16384; }
stream {
  map \$ssl_preread_server_name \$origin {
    ~^tls $ORIGIN_TLS;
    default $ORIGIN_RAW;
  }
$2
}
EOF
}
HOP="ssl_preread on; proxy_half_close on; proxy_buffer_size 64k;"
nginx_conf nginx-a "
  server { listen 127.0.0.1:$P_NGX1; $HOP proxy_pass \$origin; }
  server { listen 127.0.0.1:$P_NGX2; $HOP proxy_pass 127.0.0.1:$P_NGXB; }"
nginx_conf nginx-b "
  server { listen 127.0.0.1:$P_NGXB; $HOP proxy_pass \$origin; }"
start nginx-a nginx -p "$WORK" -c "$WORK/nginx-a.conf" -g 'daemon off;'
PID_NGX_A=$LAST_PID
start nginx-b nginx -p "$WORK" -c "$WORK/nginx-b.conf" -g 'daemon off;'
PID_NGX_B=$LAST_PID

# The Sluice edge (2 workers) with loadgen tunnels (1000 raw, 4 TLS) and two connectors.
start edge "$SLUICE" edge --fernet-keys keys.txt --listen "127.0.0.1:$P_EDGE" --admin "127.0.0.1:$P_ADMIN" --workers 2
PID_EDGE=$LAST_PID
# A prototype, not a product setting: the same edge with glibc told not to hand freed memory
# back to the kernel (see flamegraphs/README.md: the tunnel read buffers' page faults).
TUNED_MALLOC=glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432
start edge-tuned env GLIBC_TUNABLES=$TUNED_MALLOC "$SLUICE" edge --fernet-keys keys.txt --listen "127.0.0.1:$P_EDGET" --admin "127.0.0.1:$P_ADMINT" --workers 2
PID_EDGET=$LAST_PID
start edge1 "$SLUICE" edge --fernet-keys keys.txt --listen "127.0.0.1:$P_EDGE1" --admin "127.0.0.1:$P_ADMIN1" --workers 1
PID_EDGE1=$LAST_PID
sleep 1
EDGE=127.0.0.1:$P_EDGE
EDGE1=127.0.0.1:$P_EDGE1
# Tunnels are placed on the workers in turn (tunnel i on worker i mod 2: `--place`), so that
# every edge serves host t0 from worker 0 and t1 from worker 1: the kernel's SO_REUSEPORT hash
# would otherwise pick, and which core serves a download changes its CPU cost on this VM.
start edge-tunnels "$LG" tunnels --tunnel-edge "$EDGE" --fernet-keys keys.txt --tunnels 1000 --hosts 't{}.bench.test' --admin "127.0.0.1:$P_ADMIN" --place 0,1 --duration 7200
PID_EDGE_TUN=$LAST_PID
wait_line edge-tunnels.out READY 300
start edge-tunnels-tls "$LG" tunnels --tunnel-edge "$EDGE" --fernet-keys keys.txt --tunnels 4 --tunnel-tls --hosts 'tls{}.bench.test' --admin "127.0.0.1:$P_ADMIN" --duration 7200
PID_EDGE_TUN_TLS=$LAST_PID
wait_line edge-tunnels-tls.out READY 60
start edge1-tunnels "$LG" tunnels --tunnel-edge "$EDGE1" --fernet-keys keys.txt --tunnels 1000 --hosts 't{}.bench.test' --admin "127.0.0.1:$P_ADMIN1" --place 0 --duration 7200
PID_EDGE1_TUN=$LAST_PID
wait_line edge1-tunnels.out READY 300
start edget-tunnels "$LG" tunnels --tunnel-edge "127.0.0.1:$P_EDGET" --fernet-keys keys.txt --tunnels 1000 --hosts 't{}.bench.test' --admin "127.0.0.1:$P_ADMINT" --place 0,1 --duration 7200
PID_EDGET_TUN=$LAST_PID
wait_line edget-tunnels.out READY 300
"$SLUICE" token issue --fernet-keys keys.txt --hostname craw.bench.test --out craw.json > /dev/null
"$SLUICE" token issue --fernet-keys keys.txt --hostname tlsconn.bench.test --out ctls.json > /dev/null
start connector-raw "$SLUICE" connect --edge "$EDGE" --credentials craw.json --to "$ORIGIN_RAW"
PID_CONN_RAW=$LAST_PID
start connector-tls "$SLUICE" connect --edge "$EDGE" --credentials ctls.json --to "$ORIGIN_TLS"
PID_CONN_TLS=$LAST_PID
wait_line connector-raw.err "tunnel connected" 30
wait_line connector-tls.err "tunnel connected" 30

# SniTun 0.47.0: the server in worker mode (2 workers), two real clients, loadgen tunnels.
if [ "$HAVE_SNITUN" = 1 ]; then
    start snitun-server "$SNITUN_PY" "$PEERS/server.py" --fernet-key "$(head -1 keys.txt)" --mode worker --workers 2
    PID_SNITUN=$LAST_PID
    wait_line snitun-server.out LISTENING 60
    SNITUN=127.0.0.1:$(sed -n 's/LISTENING port=\([0-9]*\).*/\1/p' snitun-server.out)
    "$LG" snitun-config --fernet-keys keys.txt --hostname real.bench.test --out real.json
    "$LG" snitun-config --fernet-keys keys.txt --hostname tlsreal.bench.test --out tlsreal.json
    start snitun-client-raw "$SNITUN_PY" "$PEERS/client.py" --config real.json --server "$SNITUN" --end "$ORIGIN_RAW"
    PID_SNITUN_CLIENT_RAW=$LAST_PID
    start snitun-client-tls "$SNITUN_PY" "$PEERS/client.py" --config tlsreal.json --server "$SNITUN" --end "$ORIGIN_TLS"
    PID_SNITUN_CLIENT_TLS=$LAST_PID
    wait_line snitun-client-raw.out CONNECTED 60
    wait_line snitun-client-tls.out CONNECTED 60
    start snitun-tunnels "$LG" tunnels --tunnel-edge "$SNITUN" --fernet-keys keys.txt --tunnels 1000 --hosts 't{}.bench.test' --duration 7200
    PID_SNITUN_TUN=$LAST_PID
    wait_line snitun-tunnels.out READY 180
    start snitun-tunnels-tls "$LG" tunnels --tunnel-edge "$SNITUN" --fernet-keys keys.txt --tunnels 4 --tunnel-tls --hosts 'tls{}.bench.test' --duration 7200
    PID_SNITUN_TUN_TLS=$LAST_PID
    wait_line snitun-tunnels-tls.out READY 60
    sleep 1
else
    log "SniTun 0.47.0 unavailable (no Python >= 3.13?): its rows are skipped"
fi

# Per contender: target, raw hosts (pattern, count), TLS target, TLS hosts, and the watches
# (the path's processes as "proxy", the far end as "home").
declare -A T_RAW T_TLS H_RAW N_RAW H_TLS N_TLS W_RAW W_TLS
add() { # label raw_target raw_hosts raw_count tls_target tls_hosts tls_count "raw watches" "tls watches"
    T_RAW[$1]=$2 H_RAW[$1]=$3 N_RAW[$1]=$4 T_TLS[$1]=$5 H_TLS[$1]=$6 N_TLS[$1]=$7 W_RAW[$1]=$8 W_TLS[$1]=$9
    CONTENDERS+=("$1")
}
CONTENDERS=()
add direct "$ORIGIN_RAW" 't{}.bench.test' 1000 "$ORIGIN_TLS" 'tls{}.bench.test' 4 \
    "--watch home=$PID_ORIGIN_RAW" "--watch home=$PID_ORIGIN_TLS"
add nginx-1hop "127.0.0.1:$P_NGX1" 't{}.bench.test' 1000 "127.0.0.1:$P_NGX1" 'tls{}.bench.test' 4 \
    "--watch proxy=$PID_NGX_A --watch home=$PID_ORIGIN_RAW" "--watch proxy=$PID_NGX_A --watch home=$PID_ORIGIN_TLS"
add nginx-2hop "127.0.0.1:$P_NGX2" 't{}.bench.test' 1000 "127.0.0.1:$P_NGX2" 'tls{}.bench.test' 4 \
    "--watch proxy=$PID_NGX_A --watch proxy=$PID_NGX_B --watch home=$PID_ORIGIN_RAW" \
    "--watch proxy=$PID_NGX_A --watch proxy=$PID_NGX_B --watch home=$PID_ORIGIN_TLS"
if [ "$HAVE_SNITUN" = 1 ]; then
    add snitun "$SNITUN" 'real.bench.test' 1 "$SNITUN" 'tlsreal.bench.test' 1 \
        "--watch proxy=$PID_SNITUN --watch proxy=$PID_SNITUN_CLIENT_RAW --watch home=$PID_ORIGIN_RAW" \
        "--watch proxy=$PID_SNITUN --watch proxy=$PID_SNITUN_CLIENT_TLS --watch home=$PID_ORIGIN_TLS"
    add snitun-server "$SNITUN" 't{}.bench.test' 1000 "$SNITUN" 'tls{}.bench.test' 4 \
        "--watch proxy=$PID_SNITUN --watch home=$PID_SNITUN_TUN" "--watch proxy=$PID_SNITUN --watch home=$PID_SNITUN_TUN_TLS"
fi
add sluice-edge "$EDGE" 't{}.bench.test' 1000 "$EDGE" 'tls{}.bench.test' 4 \
    "--watch proxy=$PID_EDGE --watch home=$PID_EDGE_TUN" "--watch proxy=$PID_EDGE --watch home=$PID_EDGE_TUN_TLS"
add sluice-edge+connector "$EDGE" 'craw.bench.test' 1 "$EDGE" 'tlsconn.bench.test' 1 \
    "--watch proxy=$PID_EDGE --watch proxy=$PID_CONN_RAW --watch home=$PID_ORIGIN_RAW" \
    "--watch proxy=$PID_EDGE --watch proxy=$PID_CONN_TLS --watch home=$PID_ORIGIN_TLS"
add sluice-edge-tuned-malloc "127.0.0.1:$P_EDGET" 't{}.bench.test' 1000 "" "" 0 "--watch proxy=$PID_EDGET --watch home=$PID_EDGET_TUN" ""
add sluice-edge-1w "$EDGE1" 't{}.bench.test' 1000 "" "" 0 "--watch proxy=$PID_EDGE1 --watch home=$PID_EDGE1_TUN" ""

is_slow() { [[ $1 == snitun ]]; }

# run CASE LABEL MODE(raw|tls) SCENARIO [args...]: one measurement, appended to $RESULTS.
run() {
    local case=$1 label=$2 mode=$3 scenario=$4
    shift 4
    local target hosts count watches
    if [ "$mode" = tls ]; then
        target=${T_TLS[$label]} hosts=${H_TLS[$label]} count=${N_TLS[$label]} watches=${W_TLS[$label]}
        set -- "$@" --tls
    else
        target=${T_RAW[$label]} hosts=${H_RAW[$label]} count=${N_RAW[$label]} watches=${W_RAW[$label]}
    fi
    [ -n "$target" ] || return 0
    log "$case: $label ($(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086 # the watches are several flags
    if ! timeout 300 "$LG" "$scenario" --target "$target" --hosts "$hosts" --host-count "$count" \
        $watches --label "$label" --case "$case" --json --quiet "$@" >> "$RESULTS" 2>> "$WORK/loadgen.err"; then
        log "  $case $label failed (see loadgen.err)"
    fi
}

# fig CASE LABEL FIGURE: the figure of the last report of LABEL in CASE.
fig() {
    python3 - "$RESULTS" "$1" "$2" "$3" <<'EOF'
import json, sys
path, case, label, fig = sys.argv[1:]
val = ""
for line in open(path):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("label") == label and r.get("params", {}).get("case", r["scenario"]) == case:
        val = r["figures"].get(fig, "")
print(val)
EOF
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u +%Y-%m-%dT%H:%MZ)
FAST_LIMIT=$((DUR * 4))
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round of $ROUNDS"
    for c in "${CONTENDERS[@]}"; do
        if is_slow "$c"; then size=268435456; else size=4294967296; fi
        run bulk-raw "$c" raw bulk --conns 1 --size "$size" --duration "$FAST_LIMIT"
    done
    for c in "${CONTENDERS[@]}"; do
        [ "${N_RAW[$c]}" -ge 2 ] || continue
        if is_slow "$c"; then size=134217728; else size=2147483648; fi
        run bulk-raw-2conns "$c" raw bulk --conns 2 --size "$size" --duration "$FAST_LIMIT"
    done
    for c in "${CONTENDERS[@]}"; do
        if is_slow "$c"; then size=134217728; else size=2147483648; fi
        run bulk-tls "$c" tls bulk --conns 1 --size "$size" --duration "$FAST_LIMIT"
    done
    for c in "${CONTENDERS[@]}"; do
        run connect "$c" raw connect --concurrency 64 --duration "$DUR"
    done
    for c in "${CONTENDERS[@]}"; do
        run handshakes "$c" tls handshakes --concurrency 32 --duration "$DUR"
    done
    for c in "${CONTENDERS[@]}"; do
        [[ $c == sluice-edge-1w || $c == sluice-edge-tuned-malloc ]] && continue
        run latency-max "$c" raw latency --conns 100 --size 1024 --rate 0 --duration "$DUR"
    done
    # The fixed rate: half the lowest maximum among the non-SniTun paths (so each runs at half
    # its maximum or less); every path also runs at half its own maximum.
    common=$(for c in direct nginx-1hop nginx-2hop sluice-edge sluice-edge+connector; do fig latency-max "$c" req_per_s; done |
        python3 -c 'import sys; v=[float(x) for x in sys.stdin.read().split() if x]; print(int(min(v)/2) if v else 1000)')
    for c in "${CONTENDERS[@]}"; do
        [[ $c == sluice-edge-1w || $c == sluice-edge-tuned-malloc ]] && continue
        own=$(fig latency-max "$c" req_per_s)
        own=$(python3 -c "print(max(10, int(float('${own:-2000}') / 2)))")
        if [[ $c != snitun* ]]; then
            run latency "$c" raw latency --conns 100 --size 1024 --rate "$common" --duration "$DUR"
        fi
        run latency-own-half "$c" raw latency --conns 100 --size 1024 --rate "$own" --duration "$DUR"
    done
    if [ "$round" = 1 ] || [ "${HANDOVER_EVERY_ROUND:-1}" = 1 ]; then
        log "handover: sluice-edge"
        timeout 300 "$LG" handover --target "$EDGE" --tunnel-edge "$EDGE" --fernet-keys keys.txt \
            --admin "127.0.0.1:$P_ADMIN" --hosts 'h{}.bench.test' --duration $((DUR * 2)) --cpus 0 \
            --label sluice-edge --json --quiet >> "$RESULTS" 2>> "$WORK/loadgen.err" || log "  handover failed"
    fi
done

# Memory, once: idle tunnels and channels (mind the 20,000 open files per process).
log "scale"
scale() { # label target hosts tunnels channels watches...
    local label=$1 target=$2 hosts=$3 tunnels=$4 channels=$5
    shift 5
    local count=$((tunnels > 0 ? tunnels : 1000))
    [[ $hosts == *'{}'* ]] || count=1
    timeout 600 "$LG" scale --target "$target" --tunnel-edge "$target" --fernet-keys keys.txt \
        --hosts "$hosts" --host-count "$count" --tunnels "$tunnels" --channels "$channels" \
        --label "$label" --json --quiet "$@" >> "$RESULTS" 2>> "$WORK/loadgen.err" || log "  scale $label failed"
}
# Sluice's rows on fresh processes: an edge that has served the whole run keeps freed memory
# resident and hands it out again, so its RSS growth says more about its history than about
# a tunnel (0.13-0.38 KiB per tunnel but 6.2 per channel in two runs measured that way).
read -r P_FRESH P_FRESH2 <<< "$("$LG" free-ports 2 | tr '\n' ' ')"
start edge-fresh "$SLUICE" edge --fernet-keys keys.txt --listen "127.0.0.1:$P_FRESH" --workers 2
PID_EDGE_FRESH=$LAST_PID
sleep 1
scale sluice-edge "127.0.0.1:$P_FRESH" 's{}.bench.test' 4000 8000 --watch "proxy=$PID_EDGE_FRESH"
kill "$PID_EDGE_FRESH" 2>/dev/null || true
start edge-fresh2 "$SLUICE" edge --fernet-keys keys.txt --listen "127.0.0.1:$P_FRESH2" --workers 2
PID_EDGE_FRESH2=$LAST_PID
sleep 1
start connector-fresh "$SLUICE" connect --edge "127.0.0.1:$P_FRESH2" --credentials craw.json --to "$ORIGIN_RAW"
PID_CONN_FRESH=$LAST_PID
wait_line connector-fresh.err "tunnel connected" 30 || log "  the fresh connector did not connect"
scale sluice-edge+connector "127.0.0.1:$P_FRESH2" 'craw.bench.test' 0 1000 --watch "proxy=$PID_EDGE_FRESH2" --watch "proxy=$PID_CONN_FRESH"
scale nginx-1hop "127.0.0.1:$P_NGX1" 't{}.bench.test' 0 6000 --watch "proxy=$PID_NGX_A"
if [ "$HAVE_SNITUN" = 1 ]; then
    scale snitun-server "$SNITUN" 's{}.bench.test' 1000 2000 --watch "proxy=$PID_SNITUN"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- BENCHMARKS.md ---------------------------------------------------------------------
mkdir -p "$(dirname "$RAW_OUT")"
cp "$RESULTS" "$RAW_OUT"
cat > "$HEADER" <<EOF
# Benchmarks

One side-by-side run made by \`benches/compare.sh\` (ROUNDS=$ROUNDS, DUR=$DUR). Every figure
is the **median** of the rounds with **(min–max)**; the \`×direct\` column is the median's ratio
to the direct path's (no proxy) in the same run. On this 2-core machine absolute numbers drift
by ±20 % from run to run: the ratios, taken in one run with the contenders alternating inside
every round, are what count. Raw reports: \`benches/results/latest.jsonl\`.

## Machine and run

- Started $STARTED, commit \`$(git -C "$ROOT" rev-parse --short HEAD)\`$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)').
- $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs, $(free -g | awk '/Mem:/{print $2}') GiB; kernel $(uname -r).
- Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (other engineers' builds share the machine).
- $(rustc --version), $(nginx -v 2>&1), SniTun $([ "$HAVE_SNITUN" = 1 ] && "$SNITUN_PY" -c 'import importlib.metadata as m; print(m.version("snitun"))' || echo unavailable) on $([ "$HAVE_SNITUN" = 1 ] && "$SNITUN_PY" --version || echo -).
- Edge: \`sluice edge --workers 2\` (io_uring, workers pinned to both CPUs); \`sluice-edge-1w\`: \`--workers 1\`;
  \`sluice-edge-tuned-malloc\`: a prototype, the same edge under \`GLIBC_TUNABLES=$TUNED_MALLOC\`.
  nginx: \`worker_processes 2\`, \`ssl_preread on; proxy_half_close on; proxy_buffer_size 64k\`,
  SNI map to the origin. SniTun: \`SniTunServerWorker\` with 2 workers, real \`ClientPeer\`
  clients (\`src/testkit/peers\`), tokens protocol 2 / aes-cbc. Connector: \`sluice connect\`,
  protocol 2 / aes-cbc. Load threads pinned to both CPUs, like the edge's workers.
- Origin: \`sluice-loadgen origin\` (raw, or TLS with an ECDSA P-256 certificate, no tickets);
  browsers: rustls 0.23 (aws-lc-rs), X25519, TLS 1.3, certificate not verified (the
  CertificateVerify signature is).

## Commands

\`benches/compare.sh\` starts, once, every contender's processes, then per round and case runs
the load generator once per contender (\`T\`: the contender's address, \`H\`/\`N\`: its host names,
\`--watch proxy=PID\`: the path's processes, summed over their process trees):

\`\`\`
# far ends
sluice-loadgen origin [--tls]                                    # direct, nginx, SniTun client, connector
sluice-loadgen tunnels --tunnel-edge EDGE --fernet-keys keys.txt --tunnels 1000 --hosts 't{}.bench.test' --admin A --place 0,1 --duration 7200
sluice-loadgen tunnels --tunnel-edge EDGE --fernet-keys keys.txt --tunnels 4 --tunnel-tls --hosts 'tls{}.bench.test' --admin A --duration 7200
sluice edge --fernet-keys keys.txt --listen 127.0.0.1:P --admin 127.0.0.1:A --workers 2
sluice connect --edge EDGE --credentials craw.json --to ORIGIN   # credentials from \`sluice token issue\`
python src/testkit/peers/server.py --fernet-key K --mode worker --workers 2        # SniTun 0.47.0
python src/testkit/peers/client.py --config real.json --server SNITUN --end ORIGIN # config: \`sluice-loadgen snitun-config\`
nginx -c <temp dir>/nginx-{a,b}.conf -g 'daemon off;'            # config written by compare.sh
# cases
sluice-loadgen bulk       --target T --hosts H --host-count N --conns 1 --size 4294967296 --duration 20   # bulk-raw
sluice-loadgen bulk       ... --conns 2 --size 2147483648                                              # bulk-raw-2conns
sluice-loadgen bulk       ... --tls --conns 1 --size 2147483648                                        # bulk-tls
sluice-loadgen connect    ... --concurrency 64 --duration 5                                            # connect
sluice-loadgen handshakes ... --concurrency 32 --duration 5                                            # handshakes
sluice-loadgen latency    ... --conns 100 --size 1024 --rate 0 --duration 5                            # latency-max
sluice-loadgen latency    ... --conns 100 --size 1024 --rate R --duration 5                            # latency, latency-own-half
sluice-loadgen handover --target EDGE --tunnel-edge EDGE --fernet-keys keys.txt --admin A --hosts 'h{}.bench.test' --duration 10 --cpus 0
sluice-loadgen scale    --target T --tunnel-edge T --fernet-keys keys.txt --hosts 's{}.bench.test' --host-count 4000 --tunnels 4000 --channels 8000
\`\`\`
(every load command also gets \`--label\`, \`--case\`, \`--json\` and \`--quiet\`; SniTun's real
client gets 256 MiB / 128 MiB downloads, as it moves under 100 MB/s).

## What each case does

- \`bulk-raw\`: one connection sends a real ClientHello, then downloads 4 GiB (256 MiB for
  \`snitun\`) of raw bytes. \`bulk-raw-2conns\`: two at once, 2 GiB each, two host names.
  \`bulk-tls\`: a full rustls session, 2 GiB (128 MiB for \`snitun\`). \`cpu_s_per_gb.proxy\`:
  CPU seconds per GB of the path's processes (edge, edge+connector, nginx, SniTun server+client).
- \`connect\`: 64 loops of new connection, hello plus request, a 64-byte answer, the origin's
  close; over 1000 host names where the path has 1000 tunnels (\`sluice-edge\`, \`snitun-server\`,
  nginx and direct map all names), over its one tunnel otherwise. \`ttfb\` in µs.
- \`handshakes\`: the same inside a full TLS 1.3 handshake with the origin (32 loops).
- \`latency-max\`: 100 connections, 1 KiB request / 1 KiB answer, back to back (the maximum).
  \`latency\`: the same at a fixed rate, half of the lowest maximum among direct, nginx and
  Sluice (all at half their maximum or less); \`latency-own-half\`: each at half its own maximum.
  Open loop, corrected for coordinated omission (see \`loadgen/src/scenario/latency.rs\`). µs.
- \`handover\`: a Sluice edge's tunnel on worker 0, connections accepted by worker 0 (\`same\`)
  against connections accepted by worker 1 and handed over (\`other\`); one at a time.
- \`scale\`: idle tunnels then idle channels; VmRSS growth of the path's processes per tunnel and
  per channel (KiB), and the kernel's slab growth per channel (both ends' sockets).

## Results

EOF
render
