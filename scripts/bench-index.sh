#!/usr/bin/env bash
# Side-by-side index benchmark: Facet vs hnswlib vs FAISS HNSW on the same synthetic face-like data.
# Usage: scripts/bench-index.sh [N=100000] [QUERIES=10000]
#        env: M, EF_CONSTRUCTION, K, TARGET, THREADS (search, e.g. 1,2), BUILD_THREADS (all libraries, default 1),
#             LIBS (default facet,hnswlib,facet-int8,facet-fp16,faiss), DATA (data + results directory)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
Q=${2:-10000}
M=${M:-16}; EFC=${EF_CONSTRUCTION:-200}; K=${K:-10}; TARGET=${TARGET:-0.95}; THREADS=${THREADS:-1,2}
BUILD_THREADS=${BUILD_THREADS:-1}; LIBS=${LIBS:-facet,hnswlib,facet-int8,facet-fp16,faiss}
DATA=${DATA:-out/bench-index/face-$N}
PY=${PYTHON:-python3}
for m in numpy:numpy hnswlib:hnswlib faiss:faiss-cpu; do
  $PY -c "import ${m%%:*}" 2>/dev/null || $PY -m pip install -q "${m##*:}"
done
swift build -c release --product facet
BIN=.build/release/facet
if [ ! -s "$DATA/groundtruth.ivecs" ]; then
  mkdir -p "$DATA"
  # Generate once: face-like vectors + exact ground truth, written as .fvecs/.ivecs for all three libraries.
  "$BIN" bench index --synthetic "$N" --synthetic-queries "$Q" --save-dir "$DATA" --generate-only
fi
$PY scripts/bench_index.py --data "$DATA" --facet "$BIN" --k "$K" --target-recall "$TARGET" --m "$M" \
    --ef-construction "$EFC" --threads "$THREADS" --build-threads "$BUILD_THREADS" --libs "$LIBS" --out "$DATA/results.jsonl" | tee "$DATA/table.md"
