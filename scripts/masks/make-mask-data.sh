#!/bin/bash
# Makes the data `facet mask-train` reads, from LFW alone (docs/masks.md):
#   OUT/train/  people outside LFW view 2's pairs.txt: unmasked/ (copies), masked-train/ and masked-train-s1/, -s2/
#               (TRAIN-family masks, three draws per image);
#               mask-train embeds them itself from the LFW-centred box
#   OUT/eval/   all of LFW: unmasked.jsonl, masked-test/ (TEST-family masks), masked-test.jsonl
# Usage: scripts/masks/make-mask-data.sh LFW_DIR PAIRS_FILE OUT [FACET_BINARY]
# Embeddings: `facet embed --json --frozen --no-retry` (MMOD at upsample 0, dlib's embedding; images without a face are
# re-embedded by mask-train itself). Takes hours on 2 busy cores.
set -eu
LFW=$(realpath "$1"); PAIRS=$(realpath "$2"); OUT=$(realpath -m "$3"); F=${4:-.build/release/facet}
F=$(realpath "$F")
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT/train/unmasked" "$OUT/eval"
embed() { # $1 root, $2 out
  (cd "$1" && find . -name '*.jpg' | sort | xargs -n 100 "$F" embed --json --frozen --no-retry) > "$2.partial" 2> "$2.err" || true
  mv "$2.partial" "$2"; }
python3 - "$LFW" "$PAIRS" "$OUT/train/unmasked" <<'PY'
import os, shutil, sys
lfw, pairs, out = sys.argv[1:]
people = set()
for line in open(pairs).read().split('\n')[1:]:
    a = line.split()
    if len(a) == 3: people.add(a[0])
    elif len(a) == 4: people.update([a[0], a[2]])
for p in sorted(os.listdir(lfw)):
    if p not in people and not os.path.exists(os.path.join(out, p)):
        shutil.copytree(os.path.join(lfw, p), os.path.join(out, p))
PY
"$F" mask-dataset --in "$OUT/train/unmasked" --out "$OUT/train/masked-train" --split train --centred
# Two more TRAIN-mask draws of the same images for the detector (mask-train --extra-masked; other seeds, same family).
for s in 1 2; do "$F" mask-dataset --in "$OUT/train/unmasked" --out "$OUT/train/masked-train-s$s" --split train --centred --seed $s; done
( "$F" mask-dataset --in "$LFW" --out "$OUT/eval/masked-test" --split test --centred
  embed "$LFW" "$OUT/eval/unmasked.jsonl"
  embed "$OUT/eval/masked-test" "$OUT/eval/masked-test.jsonl" ) &
wait
