#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (swiftc -sanitize=fuzzer,address; works with the Swift 6.3 toolchain on
# Linux). Each harness is compiled together with the sources of the module it tests (no SwiftPM, so no other
# module is instrumented), then run for SECONDS on a copy of the committed corpus; new inputs libFuzzer finds go
# to .build-fuzz/corpus-NAME, crashes to .build-fuzz/crash-*.
# Usage: Fuzz/libfuzzer.sh [SECONDS=60] [images|dlib|all]
# The wire handlers need SwiftProtobuf and the cluster modules: they are fuzzed by the mutation fuzzer
# (Tests/FacetFuzzTests, scripts/fuzz.sh) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
WHICH="${2:-all}"
OUT=.build-fuzz
mkdir -p "$OUT"
build() {  # name, harness, module, sources dir, C module dirs...
  local name=$1 harness=$2 module=$3 src=$4; shift 4
  local inc=(); for d in "$@"; do inc+=(-I "$d"); done
  echo "[fuzz] building $name"
  swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name "$module" "${inc[@]}" \
    "$src"/*.swift "$harness" -o "$OUT/fuzz-$name" 2>&1 | grep -v "Cannot export local symbol" || true
  [ -x "$OUT/fuzz-$name" ] || { echo "[fuzz] build of $name failed"; exit 1; }
}
run() {  # name, seed dirs...
  local name=$1; shift
  mkdir -p "$OUT/corpus-$name"
  for d in "$@"; do cp -n "$d"/* "$OUT/corpus-$name/" 2>/dev/null || true; done
  echo "[fuzz] running $name for $SECONDS_TO_RUN s"
  (cd "$OUT" && ./"fuzz-$name" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=4096 -max_len=262144 \
      -print_final_stats=1 "corpus-$name") 2>&1 | tail -15
}
if [ "$WHICH" = images ] || [ "$WHICH" = all ]; then
  build images Fuzz/ImageDecoderFuzz.swift FacetImaging Sources/FacetImaging Sources/CTurboJPEG Sources/CPNG
  run images Tests/FacetFuzzTests/Corpus/images
fi
if [ "$WHICH" = dlib ] || [ "$WHICH" = all ]; then
  build dlib Fuzz/DlibReaderFuzz.swift FacetNN Sources/FacetNN Sources/COpenBLAS
  run dlib Tests/FacetFuzzTests/Corpus/dlib
fi
