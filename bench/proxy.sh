#!/usr/bin/env bash
# Portcullis against nginx as plain reverse proxies, in the same run, on the same
# upstream, under the same wrk load. Prints requests/s and p99 latency for each and the
# ratio Portcullis/nginx; a bare hyper proxy (host/examples/bare_hyper_proxy.rs) runs
# beside them as the floor our libraries set.
#
#   bash bench/proxy.sh                         # 5 rounds of 5 s per peer, 50 connections
#   ROUNDS=3 DURATION=10s CONNECTIONS=100 bash bench/proxy.sh
#
# The peers alternate within each round and the medians are reported: on a shared
# 2-core VM single runs vary by ±20 %, and alternating keeps slow phases from
# landing on one peer only.
# Layout on a 2-core machine: each proxy under test runs alone on core 0 (Portcullis
# and the bare proxy with one runtime worker thread, nginx with one worker process); the
# upstream (an nginx returning a 1 KiB body) and wrk share core 1. nginx and Portcullis
# keep upstream connections alive and write an access log line per request to a file.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need() {
    local missing=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} from Debian packages" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}
need
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

UPSTREAM_PORT=$(free_port)
NGINX_PORT=$(free_port)
PORTCULLIS_PORT=$(free_port)
BARE_PORT=$(free_port)
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

nginx_conf() { # name, server block
    mkdir -p "$WORK/$1"
    cat > "$WORK/$1/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
user root;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $WORK/$1/body;
    proxy_temp_path $WORK/$1/proxy;
    fastcgi_temp_path $WORK/$1/fastcgi;
    uwsgi_temp_path $WORK/$1/uwsgi;
    scgi_temp_path $WORK/$1/scgi;
    keepalive_requests 1000000;
    $2
}
CONF
}

nginx_conf upstream "access_log off;
    server { listen 127.0.0.1:$UPSTREAM_PORT; location / { default_type text/plain; return 200 '$BODY'; } }"
nginx_conf proxy "access_log $WORK/proxy/access.log;
    upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }"

cat > "$WORK/portcullis.toml" <<CONF
version = 1
[[listeners]]
address = "127.0.0.1:$PORTCULLIS_PORT"
[upstreams.backend]
targets = ["127.0.0.1:$UPSTREAM_PORT"]
[[routes]]
id = "all"
upstream = "backend"
CONF

echo "building portcullis and the bare hyper proxy (release)" >&2
(cd "$ROOT" && cargo build --release --locked -q -p portcullis --bin portcullis --example bare_hyper_proxy)

taskset -c 1 "$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
taskset -c 0 "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" &
PIDS+=($!)
PORTCULLIS_WORKERS=1 taskset -c 0 "$ROOT/target/release/portcullis" run -c "$WORK/portcullis.toml" \
    > "$WORK/portcullis-access.log" 2> "$WORK/portcullis.log" &
PIDS+=($!)
taskset -c 0 "$ROOT/target/release/examples/bare_hyper_proxy" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UPSTREAM_PORT" &
PIDS+=($!)
wait_port "$UPSTREAM_PORT"; wait_port "$NGINX_PORT"; wait_port "$PORTCULLIS_PORT"; wait_port "$BARE_PORT"

# wrk prints latency with units; convert to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}

run_wrk() { # port -> "rps p99_ms"
    local out
    out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1/")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out" >&2
        echo "error: non-2xx responses from port $1" >&2
        exit 1
    fi
    local rps p99
    rps=$(echo "$out" | awk '/Requests\/sec:/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    echo "$rps $(to_ms "$p99")"
}

echo "load: $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d$DURATION, keep-alive, GET with a 1 KiB response" >&2
# Warm up connection pools and caches once, then measure.
for port in "$NGINX_PORT" "$PORTCULLIS_PORT" "$BARE_PORT"; do
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" > /dev/null
done
NGINX_RPS=(); NGINX_P99=(); PC_RPS=(); PC_P99=(); BARE_RPS=(); BARE_P99=()
for round in $(seq 1 "$ROUNDS"); do
    read -r rps p99 < <(run_wrk "$NGINX_PORT"); NGINX_RPS+=("$rps"); NGINX_P99+=("$p99")
    read -r rps p99 < <(run_wrk "$PORTCULLIS_PORT"); PC_RPS+=("$rps"); PC_P99+=("$p99")
    read -r rps p99 < <(run_wrk "$BARE_PORT"); BARE_RPS+=("$rps"); BARE_P99+=("$p99")
    echo "round $round: nginx ${NGINX_RPS[-1]} req/s p99 ${NGINX_P99[-1]} ms;" \
        "portcullis ${PC_RPS[-1]} req/s p99 ${PC_P99[-1]} ms;" \
        "bare hyper ${BARE_RPS[-1]} req/s p99 ${BARE_P99[-1]} ms" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
N_RPS=$(median "${NGINX_RPS[@]}"); N_P99=$(median "${NGINX_P99[@]}")
P_RPS=$(median "${PC_RPS[@]}"); P_P99=$(median "${PC_P99[@]}")
B_RPS=$(median "${BARE_RPS[@]}"); B_P99=$(median "${BARE_P99[@]}")

printf '%-12s %14s %10s   (medians of %s rounds)\n' peer "requests/s" "p99 ms" "$ROUNDS"
printf '%-12s %14.0f %10.3f\n' nginx "$N_RPS" "$N_P99"
printf '%-12s %14.0f %10.3f\n' portcullis "$P_RPS" "$P_P99"
printf '%-12s %14.0f %10.3f   (reference: hyper alone, no gateway work)\n' "bare hyper" "$B_RPS" "$B_P99"
awk -v a="$P_RPS" -v b="$N_RPS" -v pa="$P_P99" -v pb="$N_P99" \
    'BEGIN { printf "ratio portcullis/nginx: requests/s %.2f, p99 %.2f\n", a / b, pa / pb }'
awk -v a="$P_RPS" -v b="$B_RPS" 'BEGIN { printf "ratio portcullis/bare hyper: requests/s %.2f\n", a / b }'
