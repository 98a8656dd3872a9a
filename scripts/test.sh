#!/usr/bin/env bash
# The README's test command: set up (packages, models) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACET_MODELS="${FACET_MODELS:-$PWD/models}"
swift build --build-tests
swift test --skip-build --parallel --num-workers 2
