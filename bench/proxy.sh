#!/usr/bin/env bash
# Portcullis against nginx as plain reverse proxies, in the same run, on the same
# upstream, under the same wrk load. Prints requests/s and p99 latency for each and the
# ratio Portcullis/nginx; a bare hyper proxy (host/examples/bare_hyper_proxy.rs) runs
# beside them as the floor our libraries set.
#
#   bash bench/proxy.sh                         # 5 rounds of 5 s per peer, 50 connections
#   ROUNDS=3 DURATION=10s CONNECTIONS=100 bash bench/proxy.sh
#   BASELINE_BIN=/tmp/portcullis-old bash bench/proxy.sh   # also an earlier build, for
#                                               # a before/after in the same run
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

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
need_tools

UPSTREAM_PORT=$(free_port)
NGINX_PORT=$(free_port)
PORTCULLIS_PORT=$(free_port)
BARE_PORT=$(free_port)
BASE_PORT=$(free_port)
BASELINE_BIN=${BASELINE_BIN:-}

upstream_conf "$UPSTREAM_PORT"
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
if [ -n "$BASELINE_BIN" ]; then
    sed "s/127.0.0.1:$PORTCULLIS_PORT/127.0.0.1:$BASE_PORT/" "$WORK/portcullis.toml" > "$WORK/baseline.toml"
    PORTCULLIS_WORKERS=1 taskset -c 0 "$BASELINE_BIN" run -c "$WORK/baseline.toml" \
        > "$WORK/baseline-access.log" 2> "$WORK/baseline.log" &
    PIDS+=($!)
    wait_port "$BASE_PORT"
fi

run_wrk() { # port -> "rps p99_ms"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$1/" | wrk_figures
}

echo "load: $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d$DURATION, keep-alive, GET with a 1 KiB response" >&2
# Warm up connection pools and caches once, then measure.
for port in "$NGINX_PORT" "$PORTCULLIS_PORT" "$BARE_PORT" ${BASELINE_BIN:+"$BASE_PORT"}; do
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" > /dev/null
done
NGINX_RPS=(); NGINX_P99=(); PC_RPS=(); PC_P99=(); BARE_RPS=(); BARE_P99=(); BASE_RPS=(); BASE_P99=()
for round in $(seq 1 "$ROUNDS"); do
    figures=$(run_wrk "$NGINX_PORT") || exit 1; read -r rps p99 <<< "$figures"; NGINX_RPS+=("$rps"); NGINX_P99+=("$p99")
    figures=$(run_wrk "$PORTCULLIS_PORT") || exit 1; read -r rps p99 <<< "$figures"; PC_RPS+=("$rps"); PC_P99+=("$p99")
    figures=$(run_wrk "$BARE_PORT") || exit 1; read -r rps p99 <<< "$figures"; BARE_RPS+=("$rps"); BARE_P99+=("$p99")
    if [ -n "$BASELINE_BIN" ]; then
        figures=$(run_wrk "$BASE_PORT") || exit 1; read -r rps p99 <<< "$figures"; BASE_RPS+=("$rps"); BASE_P99+=("$p99")
        echo "round $round: baseline ${BASE_RPS[-1]} req/s p99 ${BASE_P99[-1]} ms" >&2
    fi
    echo "round $round: nginx ${NGINX_RPS[-1]} req/s p99 ${NGINX_P99[-1]} ms;" \
        "portcullis ${PC_RPS[-1]} req/s p99 ${PC_P99[-1]} ms;" \
        "bare hyper ${BARE_RPS[-1]} req/s p99 ${BARE_P99[-1]} ms" >&2
done

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
if [ -n "$BASELINE_BIN" ]; then
    BL_RPS=$(median "${BASE_RPS[@]}"); BL_P99=$(median "${BASE_P99[@]}")
    printf '%-12s %14.0f %10.3f   (%s)\n' baseline "$BL_RPS" "$BL_P99" "$BASELINE_BIN"
    awk -v a="$P_RPS" -v b="$BL_RPS" -v pa="$P_P99" -v pb="$BL_P99" \
        'BEGIN { printf "ratio portcullis/baseline: requests/s %.2f, p99 %.2f\n", a / b, pa / pb }'
fi
