# Helpers shared by the bench scripts (sourced, not run): tools, ports, nginx configs,
# wrk output. Expects $WORK (a scratch folder) to be set by the caller.

# Installs nginx and wrk (and any other Debian packages named) when missing; sets $NGINX.
need_tools() { # [extra package ...]
    local missing=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    local extra
    for extra in "$@"; do
        command -v "$extra" >/dev/null || [ -x "/usr/sbin/$extra" ] || missing+=("$extra")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} from Debian packages" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 30 s for something to listen on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Writes $WORK/$1/nginx.conf: $NGINX_WORKERS workers (default one), temp paths inside $WORK, the given http block body.
nginx_conf() { # name, http block body
    mkdir -p "$WORK/$1"
    cat > "$WORK/$1/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes ${NGINX_WORKERS:-1};
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

# An nginx upstream on port $1 answering every request with 1 KiB of text.
upstream_conf() {
    local body
    body=$(head -c 1024 /dev/zero | tr '\0' 'x')
    nginx_conf upstream "access_log off;
    server { listen 127.0.0.1:$1; location / { default_type text/plain; return 200 '$body'; } }"
}

# wrk prints latency with units; converts to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}

# "requests/s p99_ms" of one wrk output on stdin; fails on any non-2xx answer.
wrk_figures() {
    local out rps p99
    out=$(cat)
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out" >&2
        echo "error: non-2xx responses" >&2
        return 1
    fi
    rps=$(echo "$out" | awk '/Requests\/sec:/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    echo "$rps $(to_ms "$p99")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
