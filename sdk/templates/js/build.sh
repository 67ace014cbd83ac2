#!/usr/bin/env bash
# Builds {{name}}.wasm: QuickJS by default (fast, ~1.7 MB), StarlingMonkey with
# `./build.sh sm` (~12 MB). The toolchains come from $PORTCULLIS_JS_TOOLS (a folder holding
# componentize-qjs and componentize-js) when set, else from node_modules (npm install).
set -euo pipefail
cd "$(dirname "$0")"
tools="${PORTCULLIS_JS_TOOLS:-node_modules/.bin}"
if [[ ! -x "$tools/componentize-qjs" ]]; then
    npm install --no-audit --no-fund --loglevel=error
    tools=node_modules/.bin
fi
if [[ "${1:-qjs}" == sm ]]; then
    "$tools/componentize-js" plugin.js --wit wit --world-name plugin -o {{name}}.wasm
else
    # --sync: the gateway runs components without the component model's async ABI.
    "$tools/componentize-qjs" --wit wit --world plugin --js "$PWD/plugin.js" --module-root "$PWD" -o {{name}}.wasm --sync
fi
echo "built {{name}}.wasm"
