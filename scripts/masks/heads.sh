#!/bin/bash
# Per-group unmasking heads for honest 10-fold numbers (docs/masks.md, "Session 3").
# Usage: scripts/masks/heads.sh IMAGES_TXT CACHE_DIR OUT_DIR [FACET_BINARY]
#   IMAGES_TXT  the LFW images to train on, one ./Name/Name_000i.jpg a line (e.g. the lead's /work/cache/lfw/images.txt:
#               View 2's images + the first 20 of every identity with >= 10)
#   CACHE_DIR   holds unmasked.jsonl (facet embed --json of those images, e.g. /work/cache/lfw/unmasked.jsonl) and,
#               optionally, faces.bin of facet mask-train (its centred training faces of people outside pairs.txt)
# Steps: TRAIN-family masks on every listed image (facet mask-dataset --split train --centred), facet embed --json
# --frozen --no-retry --weak-threshold 0 of the masked copies, faces called masked on the masked-face alignment the
# evaluation uses (--masked-nose-y, session 11; MASKED_NOSE_Y=0 for the standard chip) (2 shards; images without an
# MMOD face are skipped by mask-heads), then
# facet mask-heads --groups 2 (head 0 never sees people of folds 0,2,4,6,8, head 1 never those of 1,3,5,7,9);
# GROUPS=10 gives one head per fold (measured in session 6: no better than 2, docs/masks.md).
set -eu
LIST=$(realpath "$1"); CACHE=$(realpath "$2"); OUT=$(realpath -m "$3"); F=$(realpath "${4:-.build/debug/facet}")
LFW=${LFW:-$(realpath ../shared/datasets/lfw_color/lfw)}; PAIRS=${PAIRS:-$(realpath ../shared/datasets/lfw_protocol/pairs.txt)}
export FACET_MODELS=${FACET_MODELS:-$(realpath models)} OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT/unmasked"
while read -r p; do p=${p#./}; mkdir -p "$OUT/unmasked/$(dirname "$p")"; ln -sf "$LFW/$p" "$OUT/unmasked/$p"; done < "$LIST"
"$F" mask-dataset --in "$OUT/unmasked" --out "$OUT/masked-train" --split train --centred
(cd "$OUT/masked-train" && find . -name '*.jpg' | sort > ../masked-train.list)
split -n l/2 -d "$OUT/masked-train.list" "$OUT/masked-train.shard."
for s in 00 01; do
  (cd "$OUT/masked-train" && xargs -n 50 "$F" embed --json --frozen --no-retry --weak-threshold 0 --masked-nose-y "${MASKED_NOSE_Y:-0.52}" < "../masked-train.shard.$s" > "../masked-train.$s.jsonl") &
done
wait
FC=(); [ -f "$CACHE/faces.bin" ] && FC=(--face-cache "$CACHE/faces.bin")
"$F" mask-heads --pairs "$PAIRS" --unmasked "$CACHE/unmasked.jsonl" --masked "$OUT"/masked-train.0*.jsonl "${FC[@]}" \
    --out-dir "$OUT/heads" --groups "${GROUPS:-2}" --epochs 40 --learning-rate 3e-3 2>&1 | tee "$OUT/heads.log"
