#!/usr/bin/env bash
# Instructions per plain proxied request (no plugins), counted by callgrind: a deterministic
# figure where wrk on this VM spreads ±8 % between rounds. Each binary serves 200 and then
# 1 200 keep-alive requests (nginx upstream, one runtime worker); the difference over 1 000
# is the cost of one request, start-up excluded. Annotated profiles are left in
# /tmp/cg-<binary>-<n>.out for callgrind_annotate.
#
#   bash bench/instructions.sh target/release/portcullis /tmp/portcullis-old
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
WORK=$(mktemp -d)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
need_tools
UP=$(free_port); upstream_conf "$UP"
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
NG=$!
trap 'kill $NG 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_port "$UP"
run() { # bin n
  local port; port=$(free_port)
  cat > "$WORK/p.toml" <<CONF
version = 1
[[listeners]]
address = "127.0.0.1:$port"
[upstreams.backend]
targets = ["127.0.0.1:$UP"]
[[routes]]
id = "all"
upstream = "backend"
CONF
  PORTCULLIS_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" --dump-instr=no "$1" run -c "$WORK/p.toml" >/dev/null 2>"$WORK/err" &
  local pid=$!
  for _ in $(seq 1 600); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  python3 - "$port" "$2" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(n):
    c.request("GET", "/x", headers={"Host": "h"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  kill -TERM $pid; wait $pid || true
  cp "$WORK/cg.out" "/tmp/cg-$(basename $1)-$2.out"; grep -E "^(summary|totals):" "$WORK/cg.out" | head -1 | awk "{print \$2}"
}
for bin in "$@"; do
  a=$(run "$bin" 200); b=$(run "$bin" 1200)
  echo "$bin: $(( (b - a) / 1000 )) instructions per request ($a / $b)"
done
