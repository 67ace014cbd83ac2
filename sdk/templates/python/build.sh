#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py's default flags. The toolchain comes from
# $PORTCULLIS_PYTHON_TOOLS (a folder holding componentize-py) when set, else from a venv in
# .tools/ made on first use (needs python3).
set -euo pipefail
cd "$(dirname "$0")"
tools="${PORTCULLIS_PYTHON_TOOLS:-.tools/python/bin}"
if [[ ! -x "$tools/componentize-py" ]]; then
    python3 -m venv .tools/python
    .tools/python/bin/pip install --quiet --disable-pip-version-check componentize-py==0.25.1
    tools=.tools/python/bin
fi
"$tools/componentize-py" -d wit -w plugin componentize -p . app -o {{name}}.wasm
echo "built {{name}}.wasm"
