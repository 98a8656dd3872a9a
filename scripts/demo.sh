#!/usr/bin/env bash
# The README's main command: set up, build, and run the main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACET_MODELS="${FACET_MODELS:-$PWD/models}"
swift build -c release --product facet
BIN=.build/release/facet
echo "== facet embed over the bundled demo images"
"$BIN" embed demo/images/*
