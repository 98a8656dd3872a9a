#!/usr/bin/env bash
# The README's test command: set up (packages, models) and run the whole test suite:
# the Swift suites, the generated-protobuf freshness check, and the Python and C client tests (against an in-test
# ROUTER, then against a real `facet cluster up` with CURVE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACET_MODELS="${FACET_MODELS:-$PWD/models}"
swift build --build-tests
swift test --skip-build --parallel --num-workers 2
bash scripts/check-proto.sh
bash clients/python/test.sh
bash clients/c/test.sh
bash clients/test-real-cluster.sh "$PWD/.build/debug/facet"
bash scripts/check-deploy.sh
