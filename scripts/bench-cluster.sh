#!/usr/bin/env bash
# The cluster benchmark of issue 3 (and the soak of issue 4) in one run, release build:
#   bulk-load N synthetic face-like templates into 16 partitions, then for 1, 2 and 4 matchers: identify p50/p99
#   through a local cluster of real processes vs the direct in-process query of the same partitions (interleaved,
#   probe by probe), and throughput of both at 4 callers; then (SOAK_SECONDS > 0) a steady identify + enrol soak.
# Usage: [QUERIES=5000] scripts/bench-cluster.sh [TEMPLATES=100000,1000000] [SOAK_SECONDS=0] [EF_CONSTRUCTION=200] [DATA_DIR]
#   DATA_DIR: keep the bulk-loaded partitions there and reuse them on the next run with the same counts (--reuse).
#   QUERIES: probes per matcher count (the first 10% are warm-up); p99 is the 45th-worst of 4,500 at the default
#   (with 1,000 probes the p99 of a ~1 ms difference varied by ±1 ms between runs on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000,1000000}"
SOAK="${2:-0}"
EFC="${3:-200}"
DATA=()
if [ -n "${4:-}" ]; then DATA=(--data "$4" --reuse); fi
swift build -c release --product facet
BIN="$(swift build -c release --show-bin-path)/facet"
# On a shared machine with autogroup scheduling, give this session's processes (the benchmark and the nodes it
# starts) CPU priority; harmless where not permitted.
echo -15 > /proc/self/autogroup 2>/dev/null || true
echo "load before: $(cat /proc/loadavg)"
"$BIN" bench cluster --templates "$N" --matchers 1,2,4 --partitions 16 --queries "${QUERIES:-5000}" --k 10 --ef 64 \
  --ef-construction "$EFC" --concurrency 4 --throughput-seconds 10 \
  --soak-seconds "$SOAK" --identify-rate 50 --enrol-rate 5 --report-seconds 30 "${DATA[@]}"
echo "load after: $(cat /proc/loadavg)"
