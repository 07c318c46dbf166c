#!/usr/bin/env bash
# Records real PROXY protocol headers sent by HAProxy and nginx on loopback.
#
# For each scenario: a Python listener accepts one connection and saves every byte it
# receives in the first second; HAProxy or nginx (foreground, started here, stopped here by
# PID) forwards a Python client's connection to it with send-proxy / send-proxy-v2 /
# proxy_protocol on. The expected addresses in expected.txt come from the client's own
# sockets (getsockname / getpeername), not from parsing the capture, so the Rust tests
# check the parser against what the kernel says the connection was.
#
# Needs: haproxy, nginx + libnginx-mod-stream, openssl, python3 (Debian 12 packages).
# Usage: ./capture.sh            (writes *.bin and expected.txt next to this script)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 0)); print(s.getsockname()[1]); s.close()'
}

# listen.py HOST PORT OUT PEERFILE: accept one connection, save its first bytes.
cat > "$WORK/listen.py" <<'EOF'
import socket, sys, time
host, port, out, peerfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
ls = socket.socket(fam, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(8)
ls.settimeout(20)
conn, peer = ls.accept()
conn.settimeout(1.0)
data = b""
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    try:
        chunk = conn.recv(4096)
    except (socket.timeout, ConnectionResetError):
        # HAProxy's health checks close with a reset once connected.
        break
    if not chunk:
        break
    data += chunk
with open(out, "wb") as f:
    f.write(data)
with open(peerfile, "w") as f:
    f.write(f"{peer[0]} {peer[1]} {conn.getsockname()[0]} {conn.getsockname()[1]}\n")
conn.close()
ls.close()
EOF

# client.py HOST PORT TLS_SNI|- ADDRFILE: connect, record both ends, hold the connection.
cat > "$WORK/client.py" <<'EOF'
import socket, ssl, sys, time
host, port, sni, addrfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
for attempt in range(50):
    try:
        if host.startswith("/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(host)
        else:
            s = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("proxy never listened on %s:%d" % (host, port))
local, remote = s.getsockname(), s.getpeername()
if s.family == socket.AF_UNIX:
    local = remote = ("-", "-")
if sni != "-":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname=sni)
with open(addrfile, "w") as f:
    f.write(f"{local[0]} {local[1]} {remote[0]} {remote[1]}\n")
time.sleep(1.5)
s.close()
EOF

fmt_addr() { # HOST PORT -> 1.2.3.4:5 or [::1]:5
    case "$1" in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac
}

EXPECTED="$WORK/expected.txt"
{
    echo "# file version command source destination"
    echo "# Written by capture.sh from the client's and listener's own sockets; '-' = no addresses."
} > "$EXPECTED"

start_listener() { # NAME HOST PORT
    python3 "$WORK/listen.py" "$2" "$3" "$WORK/$1.bin" "$WORK/$1.peer" &
    LISTENER=$!
    PIDS+=("$LISTENER")
    sleep 0.3
}

run_haproxy() { # CONFIG_FILE
    haproxy -db -f "$1" > "$WORK/haproxy.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
}

run_nginx() { # CONFIG_FILE
    nginx -p "$WORK" -c "$1" -g 'daemon off;' > "$WORK/nginx.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
}

stop_proxy() {
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
}

finish() { # NAME VERSION COMMAND ADDRSOURCE(client|listener|none)
    wait "$LISTENER"
    cp "$WORK/$1.bin" "$HERE/$1.bin"
    local src=- dst=-
    if [ "$4" = client ]; then
        read -r lh lp rh rp < "$WORK/$1.addr"
        case "$1" in
        # The proxy's socket is dual-stack: it sees the IPv4 client as IPv4-mapped IPv6.
        *mapped*) lh="::ffff:$lh" rh="::ffff:$rh" ;;
        esac
        src="$(fmt_addr "$lh" "$lp")"; dst="$(fmt_addr "$rh" "$rp")"
    elif [ "$4" = listener ]; then
        # A health check: the proxy reports its own connection to the listener.
        read -r ph pp lh lp < "$WORK/$1.peer"
        src="$(fmt_addr "$ph" "$pp")"; dst="$(fmt_addr "$lh" "$lp")"
    fi
    echo "$1.bin $2 $3 $src $dst" >> "$EXPECTED"
    echo "captured $1.bin ($(wc -c < "$HERE/$1.bin") bytes)"
}

# One HAProxy TCP scenario: client on CLIENT_HOST -> frontend BIND -> listener on 127.0.0.1.
haproxy_tcp() { # NAME VERSION BIND CLIENT_HOST SERVER_OPTS [FRONTEND_LINES] [SNI]
    local name=$1 ver=$2 bind=$3 chost=$4 sopts=$5 extra=${6:-} sni=${7:--}
    local fport lport
    fport=$(free_port); lport=$(free_port)
    start_listener "$name" 127.0.0.1 "$lport"
    cat > "$WORK/$name.cfg" <<EOF
global
    log stderr format raw local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind ${bind}:${fport}${extra:+ $extra}
${FE_LINES:-}
    default_backend be
backend be
    server s1 127.0.0.1:${lport} ${sopts}
EOF
    run_haproxy "$WORK/$name.cfg"
    python3 "$WORK/client.py" "$chost" "$fport" "$sni" "$WORK/$name.addr"
    finish "$name" "$ver" proxy client
    stop_proxy
}

# A HAProxy health check with send-proxy(-v2): no client, the check is the connection.
haproxy_check() { # NAME VERSION SERVER_OPTS COMMAND ADDRSOURCE
    local name=$1 ver=$2 sopts=$3 cmd=$4 addrs=$5
    local fport lport
    fport=$(free_port); lport=$(free_port)
    start_listener "$name" 127.0.0.1 "$lport"
    cat > "$WORK/$name.cfg" <<EOF
global
    log stderr format raw local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    timeout check 2s
# HAProxy refuses to start without a listener; nothing connects to this one.
frontend fe
    bind 127.0.0.1:${fport}
    default_backend be
backend be
    server s1 127.0.0.1:${lport} ${sopts} check inter 5s check-send-proxy
EOF
    run_haproxy "$WORK/$name.cfg"
    finish "$name" "$ver" "$cmd" "$addrs"
    stop_proxy
}

# A client on a UNIX socket: HAProxy has no IP addresses to report. It says so with
# "PROXY UNKNOWN" in v1 and, in v2, with a LOCAL command (not PROXY + AF_UNSPEC).
haproxy_unix() { # NAME VERSION SERVER_OPTS COMMAND
    local name=$1 ver=$2 sopts=$3 cmd=$4
    local lport sock="$WORK/$1.sock"
    lport=$(free_port)
    start_listener "$name" 127.0.0.1 "$lport"
    cat > "$WORK/$name.cfg" <<EOF
global
    log stderr format raw local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind unix@${sock}
    default_backend be
backend be
    server s1 127.0.0.1:${lport} ${sopts}
EOF
    run_haproxy "$WORK/$name.cfg"
    python3 "$WORK/client.py" "$sock" 0 - "$WORK/$name.addr"
    finish "$name" "$ver" "$cmd" none
    stop_proxy
}

nginx_tcp() { # NAME LISTEN CLIENT_HOST
    local name=$1 listen=$2 chost=$3
    local fport lport
    fport=$(free_port); lport=$(free_port)
    start_listener "$name" 127.0.0.1 "$lport"
    cat > "$WORK/$name.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid $WORK/$name.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 64; }
stream {
    server {
        listen ${listen}:${fport};
        proxy_pass 127.0.0.1:${lport};
        proxy_protocol on;
    }
}
EOF
    run_nginx "$WORK/$name.conf"
    python3 "$WORK/client.py" "$chost" "$fport" - "$WORK/$name.addr"
    finish "$name" 1 proxy client
    stop_proxy
}

# A self-signed certificate so HAProxy can terminate TLS and add its SSL TLVs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 3650 \
    -subj "/CN=a.example.test" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/crt.pem"

# A unique id like HAProxy's documented example (hex client/frontend address, time, pid).
UID_FMT='    unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid'

haproxy_tcp haproxy-v1-tcp4 1 127.0.0.1 127.0.0.1 send-proxy
haproxy_tcp haproxy-v1-tcp6 1 '[::1]' ::1 send-proxy
haproxy_tcp haproxy-v1-mapped 1 '[::]' 127.0.0.1 send-proxy v4v6
haproxy_tcp haproxy-v2-tcp4 2 127.0.0.1 127.0.0.1 send-proxy-v2
haproxy_tcp haproxy-v2-tcp6 2 '[::1]' ::1 send-proxy-v2
haproxy_tcp haproxy-v2-mapped 2 '[::]' 127.0.0.1 send-proxy-v2 v4v6
FE_LINES="$UID_FMT" haproxy_tcp haproxy-v2-tlv-tls 2 127.0.0.1 127.0.0.1 \
    'send-proxy-v2 proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,crc32c,unique-id' \
    "ssl crt $WORK/crt.pem" a.example.test
FE_LINES="$UID_FMT" haproxy_tcp haproxy-v2-tlv-tcp6 2 '[::1]' ::1 \
    'send-proxy-v2 proxy-v2-options crc32c,unique-id'
haproxy_unix haproxy-v1-unix 1 send-proxy proxy
haproxy_unix haproxy-v2-unix 2 send-proxy-v2 local
haproxy_check haproxy-v2-check 2 send-proxy-v2 local none
haproxy_check haproxy-v1-check 1 send-proxy proxy listener
nginx_tcp nginx-v1-tcp4 127.0.0.1 127.0.0.1
nginx_tcp nginx-v1-tcp6 '[::1]' ::1

cp "$EXPECTED" "$HERE/expected.txt"
echo "wrote $HERE/expected.txt"
