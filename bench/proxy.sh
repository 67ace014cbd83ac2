#!/usr/bin/env bash
# Portcullis against nginx, HAProxy and Caddy as plain reverse proxies, in the same run, on
# the same upstream, under the same wrk load. Prints requests/s and p99 latency for each and
# every ratio to nginx; a bare hyper proxy (host/examples/bare_hyper_proxy.rs) runs beside
# them as the floor our libraries set.
#
#   bash bench/proxy.sh                         # 5 rounds of 5 s per peer, 50 connections
#   ROUNDS=3 DURATION=10s CONNECTIONS=100 bash bench/proxy.sh
#   BASELINE_BIN=/tmp/portcullis-old bash bench/proxy.sh   # also an earlier build, for
#                                               # a before/after in the same run
#   WORKERS=2 bash bench/proxy.sh               # every proxy with 2 workers (scaling)
#
# The peers alternate within each round and the medians are reported: on a shared
# 2-core VM single runs vary by ±20 %, and alternating keeps slow phases from
# landing on one peer only.
# Layout on a 2-core machine, WORKERS=1 (the default): each proxy under test runs alone on
# core 0 with one worker (Portcullis and the bare proxy one runtime thread, nginx one
# worker process, HAProxy `nbthread 1`, Caddy `GOMAXPROCS=1`); the upstream (an nginx
# returning a 1 KiB body) and wrk share core 1. With WORKERS=2 nothing is pinned and
# every proxy gets two workers: on 2 cores they then share the machine with wrk and the
# upstream, so the figure says how each copes with contention more than how it scales.
# Every proxy keeps upstream connections alive and writes an access log line per request.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-50}
WORKERS=${WORKERS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
need_tools haproxy caddy

if [ "$WORKERS" = 1 ]; then
    PROXY_CORES=0; LOAD_CORES=1
else
    PROXY_CORES=0-$(( $(nproc) - 1 )); LOAD_CORES=$PROXY_CORES
fi
UPSTREAM_PORT=$(free_port)
BASELINE_BIN=${BASELINE_BIN:-}
declare -A PORT
for peer in nginx haproxy caddy portcullis bare baseline; do PORT[$peer]=$(free_port); done

upstream_conf "$UPSTREAM_PORT"
NGINX_WORKERS=$WORKERS nginx_conf proxy "access_log $WORK/proxy/access.log;
    upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }"

mkdir -p "$WORK/haproxy"
cat > "$WORK/haproxy/haproxy.cfg" <<CONF
global
    nbthread $WORKERS
    maxconn 4096
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend proxy
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend upstream
backend upstream
    server up 127.0.0.1:$UPSTREAM_PORT
CONF

mkdir -p "$WORK/caddy"
cat > "$WORK/caddy/Caddyfile" <<CONF
{
    admin off
    auto_https off
}
http://127.0.0.1:${PORT[caddy]} {
    log {
        output file $WORK/caddy/access.log
    }
    reverse_proxy 127.0.0.1:$UPSTREAM_PORT
}
CONF

portcullis_conf() { # port
    cat <<CONF
version = 1
[[listeners]]
address = "127.0.0.1:$1"
[upstreams.backend]
targets = ["127.0.0.1:$UPSTREAM_PORT"]
[[routes]]
id = "all"
upstream = "backend"
CONF
}
portcullis_conf "${PORT[portcullis]}" > "$WORK/portcullis.toml"
portcullis_conf "${PORT[baseline]}" > "$WORK/baseline.toml"

echo "building portcullis and the bare hyper proxy (release)" >&2
(cd "$ROOT" && cargo build --release --locked -q -p portcullis --bin portcullis --example bare_hyper_proxy)

# Only ever run in the background (`&`): the function's subshell execs the proxy, so `$!`
# is the proxy itself and `cleanup` stops it. Variables go through `env`.
on_proxy_cores() { exec taskset -c "$PROXY_CORES" "$@"; }
taskset -c "$LOAD_CORES" "$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
on_proxy_cores "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" &
PIDS+=($!)
on_proxy_cores haproxy -db -f "$WORK/haproxy/haproxy.cfg" > "$WORK/haproxy/access.log" 2>&1 &
PIDS+=($!)
on_proxy_cores env XDG_DATA_HOME="$WORK/caddy" XDG_CONFIG_HOME="$WORK/caddy" GOMAXPROCS="$WORKERS" \
    caddy run --adapter caddyfile --config "$WORK/caddy/Caddyfile" \
    > "$WORK/caddy/caddy.log" 2>&1 &
PIDS+=($!)
on_proxy_cores env PORTCULLIS_WORKERS="$WORKERS" "$ROOT/target/release/portcullis" run -c "$WORK/portcullis.toml" \
    > "$WORK/portcullis-access.log" 2> "$WORK/portcullis.log" &
PIDS+=($!)
on_proxy_cores env WORKERS="$WORKERS" "$ROOT/target/release/examples/bare_hyper_proxy" \
    "127.0.0.1:${PORT[bare]}" "127.0.0.1:$UPSTREAM_PORT" &
PIDS+=($!)
PEERS=(nginx haproxy caddy portcullis bare)
if [ -n "$BASELINE_BIN" ]; then
    on_proxy_cores env PORTCULLIS_WORKERS="$WORKERS" "$BASELINE_BIN" run -c "$WORK/baseline.toml" \
        > "$WORK/baseline-access.log" 2> "$WORK/baseline.log" &
    PIDS+=($!)
    PEERS+=(baseline)
fi
wait_port "$UPSTREAM_PORT"
for peer in "${PEERS[@]}"; do
    wait_port "${PORT[$peer]}" || {
        echo "$peer did not start; its logs:" >&2
        tail -n 5 "$WORK"/*.log "$WORK"/*/*.log >&2 || true
        exit 1
    }
done

run_wrk() { # port -> "rps p99_ms"
    taskset -c "$LOAD_CORES" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1/" | wrk_figures
}

echo "load: $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d$DURATION, keep-alive, GET with a 1 KiB response; $WORKERS worker(s) per proxy" >&2
# Warm up connection pools and caches once, then measure.
for peer in "${PEERS[@]}"; do
    taskset -c "$LOAD_CORES" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:${PORT[$peer]}/" > /dev/null
done
declare -A RPS P99
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for peer in "${PEERS[@]}"; do
        figures=$(run_wrk "${PORT[$peer]}") || exit 1
        read -r rps p99 <<< "$figures"
        RPS[$peer]="${RPS[$peer]:-} $rps"; P99[$peer]="${P99[$peer]:-} $p99"
        line="$line $peer $rps req/s p99 $p99 ms;"
    done
    echo "$line" >&2
done

# shellcheck disable=SC2086 # the figures are space-separated lists on purpose
{
    declare -A MR MP
    for peer in "${PEERS[@]}"; do
        MR[$peer]=$(median ${RPS[$peer]}); MP[$peer]=$(median ${P99[$peer]})
    done
    printf '%-12s %14s %10s %12s %10s   (medians of %s rounds, %s worker(s))\n' \
        peer "requests/s" "p99 ms" "rps/nginx" "p99/nginx" "$ROUNDS" "$WORKERS"
    for peer in "${PEERS[@]}"; do
        name=$peer
        [ "$peer" = bare ] && name="bare hyper"
        printf '%-12s %14.0f %10.3f %12.2f %10.2f\n' "$name" "${MR[$peer]}" "${MP[$peer]}" \
            "$(awk -v a="${MR[$peer]}" -v b="${MR[nginx]}" 'BEGIN { print a / b }')" \
            "$(awk -v a="${MP[$peer]}" -v b="${MP[nginx]}" 'BEGIN { print a / b }')"
    done
    awk -v a="${MR[portcullis]}" -v b="${MR[bare]}" \
        'BEGIN { printf "ratio portcullis/bare hyper: requests/s %.2f\n", a / b }'
    if [ -n "$BASELINE_BIN" ]; then
        awk -v a="${MR[portcullis]}" -v b="${MR[baseline]}" -v pa="${MP[portcullis]}" -v pb="${MP[baseline]}" \
            -v bin="$BASELINE_BIN" \
            'BEGIN { printf "ratio portcullis/baseline (%s): requests/s %.2f, p99 %.2f\n", bin, a / b, pa / pb }'
    fi
}
