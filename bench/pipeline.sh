#!/usr/bin/env bash
# The full plugin pipeline against the same route without plugins, in one Portcullis
# process, under the same wrk load, in the same run. Prints requests/s and p99 for each
# and the ratio pipeline/plain.
#
#   bash bench/pipeline.sh                       # 5 rounds of 5 s per route, 50 connections
#   ROUNDS=3 DURATION=10s CONNECTIONS=100 bash bench/pipeline.sh
#   KEEP_WORK=1 bash bench/pipeline.sh           # keep the configs and logs afterwards
#   PORTCULLIS_BIN=/tmp/portcullis-old bash bench/pipeline.sh   # another build's gateway
#
# Routes (all proxy to one nginx upstream returning 1 KiB):
#   /plain      no plugins
#   /fresh/...  jwt-auth (RS256, inline JWKS) → rate limit keyed by the token's subject →
#               validate (the Petstore document of tests/fixtures) → transform (request
#               headers and query), each plugin in its default mode: a fresh instance per
#               request, except validate, which runs warm by default
#   /reuse/...  the same pipeline with every plugin on warm instances
# The request is GET <prefix>/pet/findByTags?tags=shoes&tags=red&limit=20, which validate
# checks (an array of strings, an integer between 1 and 100).
# Every request carries the same valid token, as a client holding one does; the rate
# limit's quota is high enough never to refuse. Layout as in bench/proxy.sh: Portcullis
# alone on core 0 with one runtime worker; the upstream and wrk share core 1.
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
    if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
need_tools

UPSTREAM_PORT=$(free_port)
PORTCULLIS_PORT=$(free_port)

upstream_conf "$UPSTREAM_PORT"

echo "building portcullis and the token helper (release)" >&2
(cd "$ROOT" && cargo build --release --locked -q -p portcullis --bin portcullis --example bench_token)
"$ROOT/target/release/examples/bench_token" > "$WORK/token.txt"
JWKS=$(sed -n 1p "$WORK/token.txt")
TOKEN=$(sed -n 2p "$WORK/token.txt")
JWKS_TOML=$(printf '%s' "$JWKS" | sed 's/\\/\\\\/g; s/"/\\"/g')

pipeline() { # route id, path prefix, extra entry line
    cat <<ROUTE
[[routes]]
id = "$1"
path = { prefix = "$2" }
upstream = "backend"
rate_limits = ["per-subject"]

[[routes.plugins]]
plugin = "jwt-auth"
grants = { crypto = true }
config = { issuers = [{ issuer = "https://idp.bench", jwks = "$JWKS_TOML", algorithms = ["RS256"], audiences = ["orders"] }], required_scopes = ["orders:read"], forward = { subject = "x-user" } }
$3

[[routes.plugins]]
plugin = "validate"
files = { document = "$ROOT/tests/fixtures/petstore.json" }
config = { base_path = "$2" }
$3

[[routes.plugins]]
plugin = "transform"
config = { request = { headers = { remove = ["x-debug"], set = { x-gateway = "portcullis" } }, query = { rename = { limit = "max" } } } }
$3
ROUTE
}

cat > "$WORK/portcullis.toml" <<CONF
version = 1
[[listeners]]
address = "127.0.0.1:$PORTCULLIS_PORT"
[plugins]
cache_dir = "$WORK/cache"
[upstreams.backend]
targets = ["127.0.0.1:$UPSTREAM_PORT"]
[rate_limits.per-subject]
quota = 100000000
window = "1s"
key = "subject"

[[routes]]
id = "plain"
path = { prefix = "/plain" }
upstream = "backend"

$(pipeline fresh /fresh "")
$(pipeline reuse /reuse 'reuse = { max_instances = 64 }')
CONF

taskset -c 1 "$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
PORTCULLIS_WORKERS=1 taskset -c 0 "${PORTCULLIS_BIN:-$ROOT/target/release/portcullis}" run -c "$WORK/portcullis.toml" \
    > "$WORK/portcullis-access.log" 2> "$WORK/portcullis.log" &
PIDS+=($!)
wait_port "$UPSTREAM_PORT"; wait_port "$PORTCULLIS_PORT"

run_wrk() { # path -> "rps p99_ms"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORTCULLIS_PORT$1" | wrk_figures
}

QUERY="tags=shoes&tags=red&limit=20"
PATHS=("/plain/pet/findByTags?$QUERY" "/fresh/pet/findByTags?$QUERY" "/reuse/pet/findByTags?$QUERY")
NAMES=(plain fresh reuse)
echo "load: $ROUNDS rounds of wrk -t1 -c$CONNECTIONS -d$DURATION, keep-alive, GET with a 1 KiB response" >&2
for p in "${PATHS[@]}"; do
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$PORTCULLIS_PORT$p" > /dev/null
done
declare -A RPS P99
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for i in "${!PATHS[@]}"; do
        figures=$(run_wrk "${PATHS[$i]}") || exit 1
        read -r rps p99 <<< "$figures"
        RPS[${NAMES[$i]}]+="$rps "; P99[${NAMES[$i]}]+="$p99 "
        line+=" ${NAMES[$i]} $rps req/s p99 $p99 ms;"
    done
    echo "$line" >&2
done

printf '%-8s %14s %10s   (medians of %s rounds)\n' route "requests/s" "p99 ms" "$ROUNDS"
for n in "${NAMES[@]}"; do
    printf '%-8s %14.0f %10.3f\n' "$n" "$(median ${RPS[$n]})" "$(median ${P99[$n]})"
done
PLAIN=$(median ${RPS[plain]})
for n in fresh reuse; do
    awk -v a="$(median ${RPS[$n]})" -v b="$PLAIN" -v n="$n" \
        'BEGIN { printf "ratio %s pipeline/plain: requests/s %.2f\n", n, a / b }'
done
