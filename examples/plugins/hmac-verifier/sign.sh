#!/usr/bin/env bash
# Prints a curl command sending a request signed as app.py expects, for trying
# examples/python-plugin.toml:   examples/plugins/hmac-verifier/sign.sh GET /partner/orders | sh
# Usage: sign.sh METHOD PATH [BODY]   (SECRET, KEY_ID and URL override the example's values)
set -euo pipefail
method="$1" path="$2" body="${3:-}"
secret="${SECRET:-change me: a secret of 16 bytes or more}"
key_id="${KEY_ID:-partner-a}"
url="${URL:-http://127.0.0.1:8080}"
date="$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')"
body_hash="$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)"
signature="$(printf '%s\n%s\n%s\n%s' "$method" "$path" "$date" "$body_hash" \
    | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
printf "curl -i -X %q %q -H %q -H %q -H %q" "$method" "$url$path" \
    "x-key-id: $key_id" "date: $date" "x-signature: sha256=$signature"
[[ -n "$body" ]] && printf " --data-binary %q" "$body"
echo
