#!/usr/bin/env bash
# What routing among many services costs: two Switchyard processes in front of the same nginx
# backend, one with a single (default) service, one with 200 services (a third each of exact
# hosts, `*.` wildcards and path prefixes under a shared host) plus the default one. wrk sends
# small keep-alive requests, targets interleaved round by round (order rotated), to:
#   one    the single-service proxy
#   exact  the 200-service proxy, Host matching an exact host
#   wild   the 200-service proxy, Host matching a wildcard
#   path   the 200-service proxy, a path prefix under a shared host
# It prints each run, then the median req/s of each against `one` measured in the same round,
# and the proxies' CPU µs per request.
#
#   Benchmarks/services-cost.sh [duration_s=3] [rounds=7]
#   env: SWITCHYARD_BIN=.build/release/switchyard  CONNECTIONS=50
# Listens on 127.0.0.1 ports 26080-26091; the processes it starts are stopped by pid.
set -euo pipefail
DUR=${1:-3}
ROUNDS=${2:-7}
CONN=${CONNECTIONS:-50}
BIN=${SWITCHYARD_BIN:-$PWD/.build/release/switchyard}
RUN=$(mktemp -d /tmp/services-cost.XXXXXX)
chmod 755 "$RUN"
for b in wrk nginx python3; do command -v $b >/dev/null || { echo "missing $b (apt-get install -y wrk nginx python3)"; exit 2; }; done
[ -x "$BIN" ] || { echo "no switchyard binary at $BIN (swift build -c release)"; exit 2; }
for p in 26080 26081 26082 26090 26091; do
    if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p is taken"; exit 2; fi
done
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

mkdir -p "$RUN/tmp"
cat > "$RUN/nginx.conf" <<EOF
worker_processes 1;
pid $RUN/nginx.pid;
error_log $RUN/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $RUN/tmp; proxy_temp_path $RUN/tmp; fastcgi_temp_path $RUN/tmp;
    uwsgi_temp_path $RUN/tmp; scgi_temp_path $RUN/tmp;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:26080 backlog=4096; location / { return 200 "hello\n"; } }
}
EOF
nginx -c "$RUN/nginx.conf"

python3 - "$RUN" <<'EOF'
import json, sys
run = sys.argv[1]
def cluster(uuid): return {"servers": [{"hostname": "127.0.0.1", "port": 26080}], "version": "1.0", "uuid": uuid}
def config(port, admin, services):
    c = {"proxy": {"hostname": "127.0.0.1", "port": port}, "configService": {"hostname": "127.0.0.1", "port": admin},
         "clusters": [cluster("d")]}
    if services: c["services"] = services
    return c
services = []
for i in range(200):
    if i % 3 == 0: s = {"name": f"s{i}", "hosts": [f"h{i}.example.com"]}
    elif i % 3 == 1: s = {"name": f"s{i}", "hosts": [f"*.w{i}.example.com"]}
    else: s = {"name": f"s{i}", "hosts": [f"h{i - 2}.example.com"], "pathPrefix": f"/p{i}"}
    s["clusters"] = [cluster(f"c{i}")]
    services.append(s)
json.dump(config(26081, 26090, None), open(f"{run}/one.json", "w"))
json.dump(config(26082, 26091, services), open(f"{run}/many.json", "w"))
EOF
"$BIN" --config "$RUN/one.json" --workers 1 --log-level WARNING 2>"$RUN/one.log" & PIDS+=($!); ONE=$!
"$BIN" --config "$RUN/many.json" --workers 1 --log-level WARNING 2>"$RUN/many.log" & PIDS+=($!); MANY=$!
for port in 26081 26082; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# name port pid host path
TARGETS=("one 26081 $ONE bench /" "exact 26082 $MANY h150.example.com /" "wild 26082 $MANY x.w151.example.com /"
         "path 26082 $MANY h150.example.com /p152/x")
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for r in $(seq 1 "$ROUNDS"); do
    n=${#TARGETS[@]}
    for k in $(seq 0 $((n - 1))); do
        read -r name port pid host path <<< "${TARGETS[$(( (k + r) % n ))]}"
        c0=$(cpu "$pid")
        out=$(wrk -t1 -c"$CONN" -d"${DUR}s" -H "Host: $host" "http://127.0.0.1:$port$path" 2>&1)
        c1=$(cpu "$pid")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
        [ -n "$non2xx" ] && { echo "$name: $non2xx non-2xx answers"; exit 1; }
        echo "round $r $name rps=$rps cpu_us_per_req=$(python3 -c "print(round(($c1-$c0)*10000/$reqs, 2))")"
    done
done | tee "$RUN/runs.txt"
python3 - "$RUN/runs.txt" <<'EOF'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+) (\S+) rps=(\S+) cpu_us_per_req=(\S+)", line)
    if m: runs.setdefault(m.group(2), {})[int(m.group(1))] = (float(m.group(3)), float(m.group(4)))
one = runs["one"]
print(f"one: median {statistics.median(v[0] for v in one.values()):.0f} req/s, {statistics.median(v[1] for v in one.values())} CPU µs/req")
for name in ("exact", "wild", "path"):
    ratios = [runs[name][r][0] / one[r][0] for r in runs[name] if r in one]
    cpu = statistics.median(v[1] for v in runs[name].values())
    print(f"{name}: median {statistics.median(ratios):.3f}x the single service's req/s (rounds {min(ratios):.3f}-{max(ratios):.3f}), {cpu} CPU µs/req")
EOF
