#!/usr/bin/env bash
# Longer fuzzing runs of the harnesses in Tests/FacetFuzzTests (image decoders, dlib model readers, wire handlers):
# the same deterministic mutation fuzzer the test suite runs, with its iteration counts multiplied by SCALE.
# Usage: scripts/fuzz.sh [SCALE]   (default 50; needs the models: scripts/setup.sh). libFuzzer: Fuzz/libfuzzer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export FACET_MODELS="${FACET_MODELS:-$PWD/models}"
export FACET_FUZZ_SCALE="${1:-50}"
swift build --build-tests
swift test --skip-build --filter FacetFuzzTests 2>&1 | grep -E "fuzz:|passed|failed|error|Test run" 
