#!/usr/bin/env bash
# Check that the committed generated protobuf code is current: regenerate into a temporary
# folder with scripts/gen-proto.sh and diff against the committed files. Exit 1 when stale.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
bash scripts/gen-proto.sh "$TMP"
FILES=(Sources/FacetWire/facet.pb.swift clients/python/facet_client/facet_pb2.py clients/c/facet.pb-c.c clients/c/facet.pb-c.h)
stale=0
for f in "${FILES[@]}"; do
  if [ ! -f "$f" ]; then echo "[check-proto] missing committed file: $f" >&2; stale=1; continue; fi
  if ! diff -u "$f" "$TMP/$f" >"$TMP/diff.txt"; then
    echo "[check-proto] stale: $f (run scripts/gen-proto.sh and commit)" >&2
    head -40 "$TMP/diff.txt" >&2
    stale=1
  fi
done
[ "$stale" = 0 ] && echo "[check-proto] generated code is current (${#FILES[@]} files)"
exit "$stale"
