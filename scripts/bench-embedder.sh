#!/usr/bin/env bash
# The embedder benchmark (issue 2), side by side in one run on the same inputs:
#   embed    ResNet descriptors of aligned 150x150 chips, batches of 1, 8, 32
#   mmod     MMOD detection on a 250x250 LFW image, upsample 0 and 1
#   pipeline decode JPEG -> MMOD (upsample 0) -> 5-point landmarks -> chip -> descriptor over the 15 committed
#            250x250 LFW originals (Tests/FacetFaceTests/Fixtures/images/lfw-*_0001.jpg)
# for Facet (1 thread; 2 threads as OpenBLAS threads, as two workers, or as each convolution split in two),
# dlib C++ 19.24 from Debian's libdlib-dev (OpenBLAS 1 and 2 threads, same OpenBLAS kernels as Facet) and the
# Python dlib wheel (dlib-bin, no BLAS). The configurations are interleaved over ROUNDS rounds.
# Reported: process CPU time per item (median; robust to other load on a shared machine) and best-of-N wall time
# per item (the minimum over all runs of all rounds; what the configuration does when it gets the cores).
# Usage: scripts/bench-embedder.sh [SECONDS_PER_MEASUREMENT [ROUNDS [WHAT]]]   WHAT: comma list, default embed,mmod,pipeline
# (env FACET_MODELS, default ./models). Writes Benchmarks/.build/bench/results.txt and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-2}"
ROUNDS="${2:-3}"
WHAT="${3:-embed,mmod,pipeline}"
MODELS="${FACET_MODELS:-$PWD/models}"
CHIPS=Tests/FacetFaceTests/Fixtures/nn/chips
IMAGE=Tests/FacetFaceTests/Fixtures/nn/images/lfw_bush.png
OUT=Benchmarks/.build/bench
mkdir -p "$OUT"
for f in dlib_face_recognition_resnet_model_v1.dat mmod_human_face_detector.dat shape_predictor_5_face_landmarks.dat; do
  [ -s "$MODELS/$f" ] || { echo "missing $MODELS/$f: run scripts/setup.sh" >&2; exit 1; }
done
dpkg -s libdlib-dev >/dev/null 2>&1 || { echo "libdlib-dev missing: run scripts/setup.sh" >&2; exit 1; }
python3 -c "import dlib, numpy, PIL" 2>/dev/null || python3 -m pip install -q dlib-bin numpy pillow
PIPE="$OUT/lfw250"
rm -rf "$PIPE" && mkdir -p "$PIPE"
cp Tests/FacetFaceTests/Fixtures/images/lfw-[A-Z]*_0001.jpg "$PIPE/"

echo "== building Facet benchmark (release) and the dlib C++ harness"
(cd Benchmarks && swift build -c release --product nn-bench 2>&1 | tail -1)
BENCH=Benchmarks/.build/release/nn-bench
if [ ! -x "$OUT/bench_dlib" ] || [ Benchmarks/dlib/bench_dlib.cpp -nt "$OUT/bench_dlib" ]; then
  g++ -O3 -std=c++17 Benchmarks/dlib/bench_dlib.cpp -o "$OUT/bench_dlib" -ldlib -lopenblas -lpng -ljpeg
fi

RES="$OUT/results.txt"
: > "$RES"
echo "== $(date -u +%FT%TZ) machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES"
CORE=$("$BENCH" --models "$MODELS" --what none | sed -nE 's/^# OpenBLAS core: ([^;]*);.*/\1/p' | sed -E 's/.*-> *//; s/ .*//')
echo "== Facet's OpenBLAS core: $CORE; dlib C++ runs use OPENBLAS_CORETYPE=$CORE" | tee -a "$RES"
F=("$BENCH" --models "$MODELS" --seconds "$SECS" --pipeline "$PIPE")
D=("$OUT/bench_dlib" "$MODELS" "$CHIPS" "$IMAGE" "$SECS")
has() { [[ ",$WHAT," == *",$1,"* ]]; }
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES"
  "${F[@]}" --threads 1 --what "$WHAT" | tee -a "$RES"
  OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=1 "${D[@]}" "$WHAT" "$PIPE" | tee -a "$RES"
  if has embed; then
    "${F[@]}" --threads 1 --what embed --engine reference | tee -a "$RES"
    "${F[@]}" --threads 2 --mode workers --what embed --batches 8,32 | tee -a "$RES"
    "${F[@]}" --threads 2 --mode split --what embed | tee -a "$RES"
    "${F[@]}" --threads 2 --mode blas --what embed | tee -a "$RES"
  fi
  has pipeline && "${F[@]}" --threads 2 --mode workers --what pipeline | tee -a "$RES"
  has mmod && "${F[@]}" --threads 2 --mode blas --what mmod | tee -a "$RES"
  OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=2 "${D[@]}" "$WHAT" "$PIPE" | tee -a "$RES"
done
python3 Benchmarks/dlib/bench_dlib.py "$MODELS" "$CHIPS" "$IMAGE" "$SECS" "$WHAT" "$PIPE" | tee -a "$RES"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES"
python3 Benchmarks/dlib/summarize.py "$RES"
