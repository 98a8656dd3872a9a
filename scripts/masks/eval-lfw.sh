#!/bin/bash
# The masked LFW evaluation with the mask-aware column filled (docs/masks.md, docs/eval.md):
# per-group unmasking heads (scripts/masks/heads.sh) + per-comparison thresholds + cohort score normalisation
# + periocular fusion (session 7; PERIOCULAR=0 leaves it out, as the tables before session 7)
# + masked-face alignment (session 11; MASKED_NOSE_Y=0 leaves it out, as the tables before session 11).
# Usage: scripts/masks/eval-lfw.sh HEADS_DIR CACHE_DIR MASKED_DIR OUT_PREFIX [FACET_BINARY]
#   CACHE_DIR as facet eval lfw --cache (e.g. a copy of /work/cache/evallfw: unmasked/masked-test JSONL + eval lines)
#   MASKED_DIR  facet mask-dataset --split test --centred copy of LFW (e.g. /work/cache/lfw/masked-test)
set -eu
HEADS=$1; CACHE=$2; MASKED=$3; OUT=$4; F=${5:-.build/debug/facet}
S=${S:-../shared/datasets}
export FACET_MODELS=${FACET_MODELS:-./models} OPENBLAS_NUM_THREADS=1
"$F" eval lfw --lfw "$S/lfw_color/lfw" --pairs "$S/lfw_protocol/pairs.txt" --masks "$MASKED" --cache "$CACHE" \
    --demographics "$S/lfw_demographics" --fold-heads "$HEADS" --cohort-size 100 $([ "${PERIOCULAR:-1}" = 0 ] || echo --periocular) \
    $([ "${MASKED_NOSE_Y:-0.52}" = 0 ] || echo --masked-nose-y "${MASKED_NOSE_Y:-0.52}") \
    --json "$OUT.json" --report "$OUT.html" --threads 2 ${EXTRA:-}
