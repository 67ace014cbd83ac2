#!/usr/bin/env bash
# Builds the plugin and runs it in the gateway's sandbox on the requests in tests/
# (`portcullis plugin invoke`; $PORTCULLIS names the binary, default `portcullis`).
set -euo pipefail
cd "$(dirname "$0")"
./build.sh
portcullis="${PORTCULLIS:-portcullis}"
config='{"header": "x-tenant"}'
expect() {
    local request="$1" wanted="$2" report
    report="$("$portcullis" plugin invoke {{name}}.wasm --config "$config" --request "$request" --json)"
    if ! grep -q -- "$wanted" <<<"$report"; then
        echo "FAIL $request: expected $wanted in:"; echo "$report"; exit 1
    fi
    echo "ok   $request"
}
expect tests/allowed.http '+ x-{{name}}: checked'
expect tests/refused.http '"status": 400'
echo "all tests passed"
