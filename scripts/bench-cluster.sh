#!/usr/bin/env bash
# The cluster benchmark of issue 3 and the soak of issue 4 in one run (release build):
#   identify p50/p99 through a local cluster vs a direct in-process query, 1/2/4 matchers, at N templates,
#   then a steady identify + enrol soak with memory over time.
# Usage: scripts/bench-cluster.sh [TEMPLATES=100000] [SOAK_SECONDS=300]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
SOAK="${2:-300}"
swift build -c release --product facet
BIN="$(swift build -c release --show-bin-path)/facet"
"$BIN" bench cluster --templates "$N" --matchers 1,2,4 --partitions 16 --queries 1000 --k 10 --ef 64 \
  --concurrency 4 --throughput-seconds 10 --soak-seconds "$SOAK" --identify-rate 50 --enrol-rate 5 --report-seconds 30
