#!/usr/bin/env bash
# Side-by-side speed of Facet's CNNs against dlib, in one run:
#   ResNet embeddings per face for aligned 150x150 chips at batch 1, 8, 32, and MMOD detection on a 250x250 image
#   (upsample 0 and 1), for Facet (1 thread; 2 threads as OpenBLAS threads or as two workers), dlib C++ 19.24
#   from Debian's libdlib-dev (OpenBLAS 1 and 2 threads) and the Python dlib wheel (dlib-bin, built without BLAS).
# Facet's BLASSetup replaces a misdetected OpenBLAS core ("Prescott" on an AVX-512/AVX2 CPU) by the right one; the
# dlib C++ runs get OPENBLAS_CORETYPE set to the core Facet ended up with, so both use identical GEMM kernels.
# The configurations are interleaved over several rounds and each number is the median over rounds of the
# per-round medians; both wall time and process CPU time are recorded (CPU time is robust to other load on the
# machine; wall time is what a 2-core run gains from its second core).
# Usage: scripts/bench-embedder.sh [SECONDS_PER_MEASUREMENT [ROUNDS]]   (env FACET_MODELS, default ./models)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-2}"
ROUNDS="${2:-3}"
MODELS="${FACET_MODELS:-$PWD/models}"
CHIPS=Tests/FacetFaceTests/Fixtures/nn/chips
IMAGE=Tests/FacetFaceTests/Fixtures/nn/images/lfw_bush.png
OUT=Benchmarks/.build/bench
mkdir -p "$OUT"
for f in dlib_face_recognition_resnet_model_v1.dat mmod_human_face_detector.dat; do
  [ -s "$MODELS/$f" ] || { echo "missing $MODELS/$f: run scripts/setup.sh" >&2; exit 1; }
done
dpkg -s libdlib-dev >/dev/null 2>&1 || { echo "libdlib-dev missing: run scripts/setup.sh" >&2; exit 1; }
python3 -c "import dlib, numpy, PIL" 2>/dev/null || python3 -m pip install -q dlib-bin numpy pillow

echo "== building Facet benchmark (release) and the dlib C++ harness"
(cd Benchmarks && swift build -c release --product nn-bench 2>&1 | tail -1)
BENCH=Benchmarks/.build/release/nn-bench
if [ ! -x "$OUT/bench_dlib" ] || [ Benchmarks/dlib/bench_dlib.cpp -nt "$OUT/bench_dlib" ]; then
  g++ -O3 -std=c++17 Benchmarks/dlib/bench_dlib.cpp -o "$OUT/bench_dlib" -ldlib -lopenblas -lpng -ljpeg
fi

RES="$OUT/results.txt"
: > "$RES"
echo "== $(date -u +%FT%TZ) machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES"
CORE=$("$BENCH" --models "$MODELS" --batches "" --upsamples "" | sed -nE 's/^# OpenBLAS core: ([^;]*);.*/\1/p' | sed -E 's/.*-> *//; s/ .*//')
echo "== Facet's OpenBLAS core: $CORE; dlib C++ 'samecore' runs use OPENBLAS_CORETYPE=$CORE" | tee -a "$RES"
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES"
  "$BENCH" --models "$MODELS" --threads 1 --seconds "$SECS" | tee -a "$RES"
  OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=1 "$OUT/bench_dlib" "$MODELS" "$CHIPS" "$IMAGE" "$SECS" | sed "s/^dlibcpp /dlibcpp-samecore /" | tee -a "$RES"
  "$BENCH" --models "$MODELS" --threads 2 --mode blas --seconds "$SECS" | tee -a "$RES"
  "$BENCH" --models "$MODELS" --threads 2 --mode workers --seconds "$SECS" --batches 8,32 --upsamples "" | tee -a "$RES"
  OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=2 "$OUT/bench_dlib" "$MODELS" "$CHIPS" "$IMAGE" "$SECS" | sed "s/^dlibcpp /dlibcpp-samecore /" | tee -a "$RES"
done
OPENBLAS_NUM_THREADS=1 "$OUT/bench_dlib" "$MODELS" "$CHIPS" "$IMAGE" "$SECS" 0 | sed "s/^dlibcpp /dlibcpp-asshipped /" | tee -a "$RES"
python3 Benchmarks/dlib/bench_dlib.py "$MODELS" "$CHIPS" "$IMAGE" "$SECS" | tee -a "$RES"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES"

python3 - "$RES" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) (embed|mmod) (?:mode=(\S+) )?threads=(\S+) (?:batch=(\d+)|upsample=(\d+))(?: image=\S+)? ms_per_item=([\d.]+) cpu_ms_per_item=([\d.]+)", line)
    if not m: continue
    who, what, mode, th, b, up, ms, cpu = m.groups()
    name = who + (f"[{mode}]" if mode else "") + f" t={th}"
    d = rows.setdefault((what, int(b) if b else int(up)), {}).setdefault(name, ([], []))
    d[0].append(float(ms)); d[1].append(float(cpu))
med = lambda xs: statistics.median(xs)
print("\n== summary: wall ms per face (embed) or per image (mmod), median over rounds; CPU ms in brackets")
for (what, k), d in sorted(rows.items()):
    print(f"{what} {'batch' if what == 'embed' else 'upsample'}={k}")
    for n, (w, c) in sorted(d.items()):
        print(f"    {n:28s} {med(w):9.2f}  [{med(c):9.2f}]  rounds={len(w)}")
    f1 = d.get("facet[blas] t=1")
    f2 = [v for n, v in d.items() if n.startswith("facet") and n.endswith("t=2")]
    best2 = min(f2, key=lambda v: med(v[0])) if f2 else None
    for ref, mine, label in (("dlibcpp-samecore t=1", f1, "1 thread"), ("dlibcpp-samecore t=2", best2, "2 threads")):
        if ref in d and mine:
            print(f"    ratio dlib C++ / Facet, {label}: wall {med(d[ref][0]) / med(mine[0]):.2f}x, CPU {med(d[ref][1]) / med(mine[1]):.2f}x")
    if "pydlib t=default" in d and f1:
        print(f"    ratio Python dlib / Facet 1 thread: wall {med(d['pydlib t=default'][0]) / med(f1[0]):.2f}x")
PY
