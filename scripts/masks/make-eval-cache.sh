#!/bin/bash
# Builds, from LFW alone, the caches the masked LFW evaluation reads (what /work/cache/lfw held in earlier sessions;
# session 11 rebuilt it with this script on a fresh machine: ~25 min on 2 cores with a release binary).
#   OUT/images.txt         View 2's 7,701 images + the first 20 of every identity with >= 10 images (9,367)
#   OUT/links/             those images as symbolic links in LFW layout
#   OUT/unmasked.jsonl     facet embed --json of them: dlib's embedding, MMOD at upsample 0, no retry, no weak box
#   OUT/masked-test/       TEST-family masks on them (facet mask-dataset --split test --centred), + masked-test.jsonl
# Then: scripts/masks/heads.sh OUT/images.txt OUT HEADS_DIR BIN (TRAIN-family masks on the same images, embedded,
# two per-group heads; ~12 min) and scripts/masks/eval-lfw.sh HEADS_DIR/heads OUT
# OUT/masked-test RESULT BIN (the first evaluation adds mask probabilities, mirror-averaged and periocular embeddings
# and the 1,297 fallback-crop templates to OUT/*.eval.jsonl, ~6 min).
# Usage: scripts/masks/make-eval-cache.sh OUT [FACET_BINARY]
set -eu
OUT=$(realpath -m "$1"); F=$(realpath "${2:-.build/release/facet}")
LFW=${LFW:-$(realpath ../shared/datasets/lfw_color/lfw)}; PAIRS=${PAIRS:-$(realpath ../shared/datasets/lfw_protocol/pairs.txt)}
export FACET_MODELS=${FACET_MODELS:-$(realpath models)} OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT/links"
python3 - "$LFW" "$PAIRS" "$OUT/images.txt" <<'PY'
import os, sys
lfw, pairs, out = sys.argv[1:]
f = lambda n, i: './%s/%s_%04d.jpg' % (n, n, int(i))
imgs = set()
for line in open(pairs).read().split('\n')[1:]:
    a = line.split()
    if len(a) == 3: imgs.update([f(a[0], a[1]), f(a[0], a[2])])
    elif len(a) == 4: imgs.update([f(a[0], a[1]), f(a[2], a[3])])
for p in sorted(os.listdir(lfw)):
    fs = sorted(x for x in os.listdir(os.path.join(lfw, p)) if x.endswith('.jpg'))
    if len(fs) >= 10: imgs.update('./%s/%s' % (p, x) for x in fs[:20])
open(out, 'w').write('\n'.join(sorted(imgs)) + '\n')
PY
while read -r p; do p=${p#./}; mkdir -p "$OUT/links/$(dirname "$p")"; ln -sf "$LFW/$p" "$OUT/links/$p"; done < "$OUT/images.txt"
embed() { # $1 root, $2 list, $3 out: two processes
  split -n l/2 -d "$2" "$3.shard."
  for s in 00 01; do
    (cd "$1" && xargs -n 100 "$F" embed --json --no-mask --no-retry --weak-threshold 0 < "$3.shard.$s" > "$3.$s" 2> "$3.$s.err" || true) &
  done
  wait; cat "$3.00" "$3.01" > "$3"; rm -f "$3.shard."* "$3.00" "$3.01"; }
"$F" mask-dataset --in "$OUT/links" --out "$OUT/masked-test" --split test --centred
embed "$OUT/links" "$OUT/images.txt" "$OUT/unmasked.jsonl"
(cd "$OUT/masked-test" && find . -name '*.jpg' | sort > ../masked-test.list)
embed "$OUT/masked-test" "$OUT/masked-test.list" "$OUT/masked-test.jsonl"
wc -l "$OUT"/*.jsonl
