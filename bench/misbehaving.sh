#!/usr/bin/env bash
# Healthy routes beside misbehaving plugins (issue 10, finding 6): the healthy routes'
# requests/s and p99 alone; beside two control loads (the same wrk, same connections,
# hammering a well-behaved plugin route: one forwarded upstream, one the plugin answers
# itself); and beside the attack (every kind of misbehaving plugin hammered on routes of
# its own), in one Portcullis process, in the same run. Prints them, the ratios, and the
# gateway's resident memory.
#
# On this 2-core machine the gateway has one core, so any extra load takes requests/s
# from the healthy routes; the controls separate what the misbehaviour costs from what
# 16 more busy connections cost. Requests the gateway answers itself (a plugin's reply,
# or a failure) come back without an upstream hop, so their connections ask again sooner
# and take a larger share of the core than forwarded ones, misbehaving or not: hence two
# controls. The verdict compares the attack with the costlier control.
#
#   bash bench/misbehaving.sh                    # 3 rounds of 10 s per phase
#   ROUNDS=5 DURATION=5s HEALTHY_CONNECTIONS=50 ATTACK_CONNECTIONS=16 bash bench/misbehaving.sh
#   KEEP_WORK=1 bash bench/misbehaving.sh        # keep configs and logs afterwards
#   ATTACKS="body cpu" bash bench/misbehaving.sh  # only these misbehaving routes
#
# Healthy routes (nginx upstream returning 1 KiB):
#   /plain        no plugins
#   /passthrough  a plugin that changes nothing, on a fresh instance per request
# Misbehaving plugins, one route each (tests/plugins/guests/examples/):
#   /atk/headers  sets 30 000 headers (the head limits refuse past 100 / 64 KiB)
#   /atk/append   appends one header in a loop of 65 535 (scripted, POST body)
#   /atk/names    counts 500 new metric names per request
#   /atk/log      logs 10 000 lines per request
#   /atk/body     replies with a 200 MB body (memory budget 256 MiB, body budget 1 MiB)
#   /atk/cpu      loops until its deadline (50 ms)
#   /atk/memory   allocates until its memory cap
#   /atk/status   replies with status 600
# Pass: healthy requests/s under attack >= 0.80 of the costlier control's, p99 <= 2x its
# p99, no crash, RSS bounded (the script says which held).
# Layout as bench/proxy.sh: Portcullis alone on core 0 with one runtime worker; the
# upstream and both wrk processes share core 1.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
HEALTHY_CONNECTIONS=${HEALTHY_CONNECTIONS:-50}
ATTACK_CONNECTIONS=${ATTACK_CONNECTIONS:-16}
ATTACKS=${ATTACKS:-headers append names log body cpu memory status}
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

echo "building portcullis and the test plugins (release)" >&2
(cd "$ROOT" && cargo build --release --locked -q -p portcullis --bin portcullis \
    && cargo build --release --locked -q -p portcullis-test-plugins)
CONSTANTS=$(ls -t "$ROOT"/target/release/build/portcullis-test-plugins-*/out/plugins.rs | head -1)
plugin() { # name -> path of its component
    grep -o "\"[^\"]*/$1\.wasm\"" "$CONSTANTS" | head -1 | tr -d '"'
}

HEADERS=$(python3 -c 'print(", ".join(f"x-h{i} = \"v\"" for i in range(30000)))')
attack_route() { # id, plugin, config, budgets
    cat <<ROUTE
[[routes]]
id = "atk-$1"
path = { prefix = "/atk/$1" }
upstream = "backend"
[[routes.plugins]]
plugin = "$(plugin "$2")"
config = $3
budgets = $4
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

[[routes]]
id = "plain"
path = { prefix = "/plain" }
upstream = "backend"

[[routes]]
id = "passthrough"
path = { prefix = "/passthrough" }
upstream = "backend"
[[routes.plugins]]
plugin = "$(plugin pass_through)"

[[routes]]
id = "control"
path = { prefix = "/control" }
upstream = "backend"
[[routes.plugins]]
plugin = "$(plugin pass_through)"

[[routes]]
id = "reply"
path = { prefix = "/reply" }
upstream = "backend"
[[routes.plugins]]
plugin = "$(plugin responder)"
config = { status = 403, body = "denied" }

$(attack_route headers tagger "{ tag = \"t\", set = { $HEADERS } }" '{ deadline = "50ms" }')
$(attack_route append scripted '{}' '{ deadline = "50ms" }')
$(attack_route names noisy '{ lines = 0, names = 500 }' '{ deadline = "50ms" }')
$(attack_route log noisy '{ lines = 10000, names = 0 }' '{ deadline = "50ms" }')
$(attack_route body oversized '{ bytes = 200000000 }' '{ deadline = "1s", memory_mib = 256 }')
$(attack_route cpu looper '{}' '{ deadline = "50ms" }')
$(attack_route memory memory_bomb '{}' '{ deadline = "50ms" }')
$(attack_route status responder '{ status = 600, body = "odd" }' '{ deadline = "50ms" }')
CONF

ATTACK_PATHS=$(for a in $ATTACKS; do printf '"/atk/%s", ' "$a"; done)
cat > "$WORK/control.lua" <<LUA
-- The control: the same connections on a well-behaved plugin route.
request = function() return wrk.format("GET", "/control") end
LUA
cat > "$WORK/reply.lua" <<LUA
-- The second control: the same connections on a well-behaved plugin that answers itself.
request = function() return wrk.format("GET", "/reply") end
LUA
cat > "$WORK/attack.lua" <<LUA
-- Cycles through the misbehaving routes; the append script is a POST body.
local paths = { $ATTACK_PATHS }
local i = 0
request = function()
    i = i + 1
    local p = paths[(i % #paths) + 1]
    if p == "/atk/append" then
        return wrk.format("POST", p, { ["Content-Type"] = "application/octet-stream" }, "\\11\\255\\255")
    end
    return wrk.format("GET", p)
end
LUA

taskset -c 1 "$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
PORTCULLIS_WORKERS=1 taskset -c 0 "$ROOT/target/release/portcullis" run -c "$WORK/portcullis.toml" \
    > "$WORK/portcullis-access.log" 2> "$WORK/portcullis.log" &
GATEWAY=$!
PIDS+=($GATEWAY)
wait_port "$UPSTREAM_PORT"; wait_port "$PORTCULLIS_PORT"

rss() { # "now_MiB peak_MiB" of the gateway
    awk '/VmRSS/ { now = $2 } /VmHWM/ { peak = $2 } END { printf "%.0f %.0f", now / 1024, peak / 1024 }' \
        "/proc/$GATEWAY/status"
}

healthy() { # path -> "rps p99_ms"
    taskset -c 1 wrk -t1 -c"$HEALTHY_CONNECTIONS" -d"$DURATION" --latency \
        "http://127.0.0.1:$PORTCULLIS_PORT$1" | wrk_figures
}

background() { # lua script name; runs for the duration plus a margin
    taskset -c 1 wrk -t1 -c"$ATTACK_CONNECTIONS" -d"$(( ${DURATION%s} + 2 ))s" \
        -s "$WORK/$1.lua" "http://127.0.0.1:$PORTCULLIS_PORT" > "$WORK/$1.out" 2>&1 &
    BACKGROUND=$!
}

echo "healthy load: wrk -t1 -c$HEALTHY_CONNECTIONS -d$DURATION; attack: wrk -t1 -c$ATTACK_CONNECTIONS cycling /atk/{${ATTACKS// /,}}" >&2
for p in /plain /passthrough; do
    taskset -c 1 wrk -t1 -c"$HEALTHY_CONNECTIONS" -d2s "http://127.0.0.1:$PORTCULLIS_PORT$p" > /dev/null
done
echo "rss after warm-up: $(rss) MiB (now, peak)" >&2

declare -A RPS P99
PHASES=(alone control reply attack)
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for p in /plain /passthrough; do
        for phase in "${PHASES[@]}"; do
            if [ "$phase" != alone ]; then
                background "$phase"
                sleep 1 # the background load is under way before the healthy load starts
            fi
            read -r rps p99 <<< "$(healthy "$p")"
            if [ "$phase" != alone ]; then wait "$BACKGROUND" || true; fi
            kill -0 "$GATEWAY" || { echo "error: the gateway died ($phase)" >&2; exit 1; }
            RPS[$phase$p]+="$rps "; P99[$phase$p]+="$p99 "
            line+=" $p $phase $rps req/s p99 $p99 ms;"
        done
    done
    echo "$line rss $(rss) MiB" >&2
done
echo "background requests answered (last run): control $(awk '/requests in/ {print $1}' "$WORK/control.out"), reply $(awk '/requests in/ {print $1}' "$WORK/reply.out"), attack $(awk '/requests in/ {print $1}' "$WORK/attack.out")" >&2

printf '%-13s %10s %8s %10s %8s %10s %8s %10s %8s %9s %9s %9s\n' route "alone r/s" "p99 ms" "ctrl r/s" "p99 ms" \
    "reply r/s" "p99 ms" "atk r/s" "p99 ms" "atk/alone" "atk/ctrl" "p99 a/c"
verdict=held
for p in /plain /passthrough; do
    a=$(median ${RPS[alone$p]}); ap=$(median ${P99[alone$p]})
    f=$(median ${RPS[control$p]}); fp=$(median ${P99[control$p]})
    r=$(median ${RPS[reply$p]}); rp=$(median ${P99[reply$p]})
    b=$(median ${RPS[attack$p]}); bp=$(median ${P99[attack$p]})
    # The costlier control: the one that left the healthy route fewer requests/s.
    read -r c cp <<< "$(awk -v f="$f" -v fp="$fp" -v r="$r" -v rp="$rp" 'BEGIN { if (r < f) print r, rp; else print f, fp }')"
    read -r xa xc pc <<< "$(awk -v a="$a" -v b="$b" -v c="$c" -v cp="$cp" -v bp="$bp" \
        'BEGIN { printf "%.2f %.2f %.2f", b / a, b / c, bp / cp }')"
    printf '%-13s %10.0f %8.3f %10.0f %8.3f %10.0f %8.3f %10.0f %8.3f %9s %9s %9s\n' "$p" "$a" "$ap" "$f" "$fp" "$r" "$rp" "$b" "$bp" "$xa" "$xc" "$pc"
    awk -v x="$xc" -v p="$pc" 'BEGIN { exit !(x >= 0.80 && p <= 2.0) }' || verdict="did NOT hold"
done
read -r now peak <<< "$(rss)"
echo "gateway rss: $now MiB now, $peak MiB peak"
echo "target (attack >= 0.80 of the costlier control's requests/s, p99 <= 2x its p99): $verdict"
