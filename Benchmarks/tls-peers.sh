#!/usr/bin/env bash
# TLS termination side by side: Switchyard, HAProxy and nginx terminate TLS 1.3 with the same
# ECDSA P-256 certificate, one worker/thread each, in front of the same plain backend (nginx:
# `/` answers "hello\n", `/big` is a 1 MiB file). Three loads with wrk, targets interleaved
# round by round (order rotated), so drift hits all alike:
#   close  new connections per second: `Connection: close`, one full handshake per request
#   small  keep-alive small requests per second
#   big    keep-alive 1 MiB bodies, reported as MiB/s
# For each run it also reads the proxy's CPU time (utime + stime, /proc) and reports CPU µs
# per request (for `close`: per handshake, handshake crypto included).
#
#   Benchmarks/tls-peers.sh [duration_s=5] [connections=32]
#   env: ROUNDS=3  SWITCHYARD_BIN=.build/release/switchyard  LOADS="close small big"
# Everything listens on 127.0.0.1 ports 24080-24445; the processes it starts are stopped by pid.
set -euo pipefail
DUR=${1:-5}
CONN=${2:-32}
ROUNDS=${ROUNDS:-3}
LOADS=${LOADS:-"close small big"}
BIN=${SWITCHYARD_BIN:-$PWD/.build/release/switchyard}
RUN=$(mktemp -d /tmp/tls-peers.XXXXXX)
chmod 755 "$RUN"   # nginx workers (www-data) read the 1 MiB file
for b in wrk nginx haproxy openssl curl; do command -v $b >/dev/null || { echo "missing $b (apt-get install -y wrk nginx haproxy openssl curl)"; exit 2; }; done
[ -x "$BIN" ] || { echo "no switchyard binary at $BIN (swift build -c release)"; exit 2; }
for p in 24080 24090 24443 24444 24445; do
    if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p is taken"; exit 2; fi
done

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for f in "$RUN"/backend.pid "$RUN"/nginx.pid "$RUN"/haproxy.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$RUN/key.pem" -out "$RUN/cert.pem" \
    -days 2 -subj /CN=bench.test -addext subjectAltName=DNS:bench.test 2>/dev/null
cat "$RUN/cert.pem" "$RUN/key.pem" > "$RUN/combined.pem"
mkdir -p "$RUN/www" "$RUN/tmp"
head -c 1048576 /dev/urandom > "$RUN/www/big"

temps="client_body_temp_path $RUN/tmp/b; proxy_temp_path $RUN/tmp/p; fastcgi_temp_path $RUN/tmp/f; uwsgi_temp_path $RUN/tmp/u; scgi_temp_path $RUN/tmp/s;"
cat > "$RUN/backend.conf" <<CONF
worker_processes 1; daemon on; pid $RUN/backend.pid; error_log $RUN/backend.err warn;
events { worker_connections 8192; }
http { access_log off; sendfile on; tcp_nodelay on; keepalive_requests 1000000; $temps
  server { listen 127.0.0.1:24080 backlog=4096;
    location = / { default_type text/plain; return 200 "hello\n"; }
    location = /big { root $RUN/www; default_type application/octet-stream; } } }
CONF
cat > "$RUN/nginx.conf" <<CONF
worker_processes 1; daemon on; pid $RUN/nginx.pid; error_log $RUN/nginx.err warn;
events { worker_connections 8192; }
http { access_log off; tcp_nodelay on; keepalive_requests 1000000; $temps
  upstream b { server 127.0.0.1:24080; keepalive 64; }
  server { listen 127.0.0.1:24445 ssl backlog=4096;
    ssl_certificate $RUN/cert.pem; ssl_certificate_key $RUN/key.pem; ssl_protocols TLSv1.3;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_max_temp_file_size 0; } } }
CONF
cat > "$RUN/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 6000
    pidfile $RUN/haproxy.pid
    daemon
    ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
    mode http
    maxconn 6000
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:24444 ssl crt $RUN/combined.pem alpn http/1.1 backlog 4096
    default_backend be
backend be
    server s1 127.0.0.1:24080
CONF
cat > "$RUN/switchyard.json" <<CONF
{"proxy": {"hostname": "127.0.0.1", "listeners": [{"port": 24443, "tls": {"certificates": [{"cert": "$RUN/cert.pem", "key": "$RUN/key.pem"}], "minVersion": "1.3"}}]},
 "configService": {"hostname": "127.0.0.1", "port": 24090},
 "cluster": {"servers": [{"hostname": "127.0.0.1", "port": 24080}], "version": "1.0"}, "logLevel": "WARNING"}
CONF
nginx -c "$RUN/backend.conf"
nginx -c "$RUN/nginx.conf"
haproxy -f "$RUN/haproxy.cfg"
"$BIN" --config "$RUN/switchyard.json" --workers 1 2> "$RUN/switchyard.log" &
PIDS+=($!)
SY_PID=$!
declare -A PORT=([switchyard]=24443 [haproxy]=24444 [nginx]=24445)
for t in switchyard haproxy nginx; do
    for _ in $(seq 50); do curl -sf --cacert "$RUN/cert.pem" --resolve bench.test:${PORT[$t]}:127.0.0.1 "https://bench.test:${PORT[$t]}/" >/dev/null && break; sleep 0.1; done
    cmp -s <(curl -sf --cacert "$RUN/cert.pem" --resolve bench.test:${PORT[$t]}:127.0.0.1 "https://bench.test:${PORT[$t]}/big") "$RUN/www/big" \
        || { echo "$t does not serve /big correctly"; exit 1; }
done

# Process ids whose CPU counts as the target's (nginx: its master and workers).
pids_of() {
    case $1 in
        switchyard) echo "$SY_PID" ;;
        haproxy) cat "$RUN/haproxy.pid" ;;
        nginx) local m; m=$(cat "$RUN/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
    esac
}
cpu_ticks() { local s=0; for p in $(pids_of "$1"); do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $s; }
HZ=$(getconf CLK_TCK)

echo "load target round rps mibps requests cpu_us_per_req" > "$RUN/results.txt"
targets=(switchyard haproxy nginx)
for load in $LOADS; do
    path=/; header=()
    [ "$load" = big ] && path=/big
    [ "$load" = close ] && header=(-H "Connection: close")
    for round in $(seq "$ROUNDS"); do
        for i in 0 1 2; do
            t=${targets[$(( (i + round) % 3 ))]}
            before=$(cpu_ticks "$t")
            out=$(timeout $((DUR + 20)) wrk -t1 -c"$CONN" -d"${DUR}s" "${header[@]}" "https://127.0.0.1:${PORT[$t]}$path" 2>&1)
            after=$(cpu_ticks "$t")
            reqs=$(echo "$out" | awk '/requests in/ {print $1}')
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
            mibps=$(awk -v r="$rps" -v l="$load" 'BEGIN { printf "%.1f", (l == "big" ? r : 0) }')
            cpu=$(awk -v a="$after" -v b="$before" -v n="$reqs" -v hz="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? (a - b) / hz * 1e6 / n : 0) }')
            echo "$load $t $round $rps $mibps $reqs $cpu" >> "$RUN/results.txt"
            [ -n "$errors" ] && echo "  $load $t: $errors"
            sleep 1
        done
    done
done

echo "median over $ROUNDS rounds, ${DUR}s each, c$CONN, TLS 1.3, ECDSA P-256, 1 worker each (raw: $RUN/results.txt)"
printf "%-8s %-11s %12s %10s %16s %10s\n" load target "req/s" "MiB/s" "CPU µs/req" "vs HAProxy"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for load in $LOADS; do
    hp=$(awk -v l="$load" '$1 == l && $2 == "haproxy" {print $4}' "$RUN/results.txt" | median)
    for t in "${targets[@]}"; do
        rps=$(awk -v l="$load" -v t="$t" '$1 == l && $2 == t {print $4}' "$RUN/results.txt" | median)
        cpu=$(awk -v l="$load" -v t="$t" '$1 == l && $2 == t {print $7}' "$RUN/results.txt" | median)
        mib=$([ "$load" = big ] && echo "$rps" || echo "-")
        ratio=$(awk -v a="$rps" -v b="$hp" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
        printf "%-8s %-11s %12s %10s %16s %10s\n" "$load" "$t" "$rps" "$mib" "$cpu" "$ratio"
    done
done
