#!/usr/bin/env bash
# The gateway's resident memory with 20 routes × 3 built-in plugins (key-auth, authz,
# transform): right after a first start (which compiles the plugins) and after a restart
# (compile cache warm), after one request per route, and with 1 000 idle
# keep-alive client connections open. Then where it goes: the largest mappings of
# /proc/PID/smaps by resident size (the binary's code, the heap, the plugin instance pool's
# slots, thread stacks).
#
#   bash bench/memory.sh                  # the release build of this checkout
#   CONNECTIONS=2000 bash bench/memory.sh
#   bash bench/memory.sh /tmp/portcullis-old   # another build, same config
#   SETTLE=0 bash bench/memory.sh         # traffic at once after the start (default: 2 s later)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNECTIONS=${CONNECTIONS:-1000}
BIN=${1:-}
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [ -z "$BIN" ]; then
    echo "building portcullis (release)" >&2
    (cd "$ROOT" && cargo build --release --locked -q -p portcullis --bin portcullis)
    BIN=$ROOT/target/release/portcullis
fi

PORT=$(free_port)
KEY_SHA256=$(printf '%s' bench-key | sha256sum | cut -d' ' -f1)
{
    printf 'version = 1\n[[listeners]]\naddress = "127.0.0.1:%s"\n' "$PORT"
    printf '[plugins]\ncache_dir = "%s/cache"\n' "$WORK"
    for i in $(seq 1 20); do
        cat <<ROUTE
[[routes]]
id = "r$i"
path = { prefix = "/r$i" }
respond = { status = 200, body = "ok" }
[[routes.plugins]]
plugin = "key-auth"
config = { consumers = { bench = { key_sha256 = "$KEY_SHA256", groups = ["gold"] } } }
[[routes.plugins]]
plugin = "authz"
config = { groups = ["gold"] }
[[routes.plugins]]
plugin = "transform"
[routes.plugins.config.request.headers]
set = { x-route = "r$i" }
ROUTE
    done
} > "$WORK/gateway.toml"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }

# The first start compiles the three components (cranelift's working memory stays with the
# allocator afterwards); a restart loads them from the compile cache, as a replica that
# is restarted or rescheduled with its cache does. Both are reported; the rest of the
# run uses the second.
start_gateway() {
    PORTCULLIS_WORKERS=1 "$BIN" run -c "$WORK/gateway.toml" > "$WORK/access.log" 2> "$WORK/gateway.log" &
    PID=$!
    wait_port "$PORT"
}
start_gateway
COLD=$(rss_kib)
kill "$PID"; wait "$PID" 2>/dev/null || true
start_gateway
START=$(rss_kib)
# Traffic starts a little after the start, as it does for a replica behind a load balancer:
# mimalloc gives freed memory back only after a delay (about a second) and only when the
# thread allocates again, so requests sent at once would find the start's garbage still
# resident and requests sent later would not; measured both ways the figures differ by up
# to 20 MiB. SETTLE=0 measures the first way.
sleep "${SETTLE:-2}"

ulimit -n $((CONNECTIONS + 256))
# Holds the connections open until told to let go (a line on stdin), after one request on
# each: first one per route, then the rest spread over the routes.
mkfifo "$WORK/go" "$WORK/ready"
cat > "$WORK/client.py" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    route = i % 20 + 1
    s.sendall(f"GET /r{route} HTTP/1.1\r\nHost: h\r\nx-api-key: bench-key\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\nok" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit(f"connection {i} closed: {data[:200]!r}")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"connection {i}: {data[:200]!r}")
    conns.append(s)
    if i == 19:
        print("routes", flush=True)
print("all", flush=True)
sys.stdin.readline()
PY
python3 "$WORK/client.py" "$PORT" "$CONNECTIONS" < "$WORK/go" > "$WORK/ready" &
CLIENT=$!
exec 3> "$WORK/go"
exec 4< "$WORK/ready"
read -r _ <&4
WARM=$(rss_kib)
read -r _ <&4
HELD=$(rss_kib)
cp "/proc/$PID/smaps" "$WORK/smaps"
echo >&3
exec 3>&-
wait "$CLIENT"

python3 - "$COLD" "$START" "$WARM" "$HELD" "$CONNECTIONS" "$WORK/smaps" <<'PY'
import collections, sys
cold, start, warm, held, n = (int(v) for v in sys.argv[1:6])
print(f"RSS after a first start (compiling):  {cold / 1024:6.1f} MiB")
print(f"RSS after a restart (compile cache):  {start / 1024:6.1f} MiB")
print(f"after one request per route:          {warm / 1024:6.1f} MiB")
print(f"with {n} idle keep-alive connections: {held / 1024:6.1f} MiB "
      f"({(held - warm) / n:.1f} KiB per connection)")
maps, name, size, anon, total = [], None, 0, 0, 0
for line in open(sys.argv[6]):
    fields = line.split()
    if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        name, size = (fields[5] if len(fields) > 5 else "[anonymous]"), (hi - lo) // 1024
    elif fields[0] == "Rss:":
        total += int(fields[1])
        if int(fields[1]):
            maps.append((int(fields[1]), name, size))
    elif fields[0] == "Anonymous:":
        anon += int(fields[1])
by_name = collections.Counter()
for rss, name, _ in maps:
    by_name[name] += rss
print(f"resident with {n} connections open: {total} KiB, anonymous {anon} KiB, file-backed {total - anon} KiB")
print("by mapping name (KiB):")
for name, rss in by_name.most_common(6):
    print(f"{rss:10d}  {name}")
print("largest single mappings (KiB resident, of KiB mapped):")
for rss, name, size in sorted(maps, reverse=True)[:8]:
    print(f"{rss:10d}  {name} ({size})")
PY
