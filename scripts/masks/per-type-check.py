#!/usr/bin/env python3
"""Masked-unmasked FNMR of the product path per TEST mask type and placement (session 12, docs/masks.md): the View 2
genuine pairs of verify-check.py (first image unmasked, second TEST-masked; bundled detector, head, per-type and fused
thresholds, or those of DIR), split by the mask drawn on the second image (MASKED_DIR/masks-manifest.jsonl), with
how often the detector called it masked.
Usage: scripts/masks/per-type-check.py CACHE_DIR PAIRS MASKED_DIR [DIR]"""
import os, sys, json, collections
import numpy as np
here = os.path.dirname(os.path.abspath(__file__))
cache_dir, pairs_file, masked_dir = sys.argv[1:4]
sys.argv = [sys.argv[0], cache_dir, pairs_file] + sys.argv[4:5]
src = open(os.path.join(here, "verify-check.py")).read()
exec(src[src.index("import os"):src.index("def kind(a,b)")].replace("os.path.dirname(os.path.abspath(__file__))", repr(here)))
manifest = {}
for l in open(f"{masked_dir}/masks-manifest.jsonl"):
    o = json.loads(l); manifest[o["path"]] = o
A, PA, MA = side(False); B, PB, MB = side(True)
accepted, called = collections.defaultdict(list), collections.defaultdict(list)
for p in pairs:
    if not p[4]: continue
    i, j = key(p[0], p[1]), key(p[2], p[3])
    d = np.linalg.norm(A[i] - B[j])
    if MA[i] or MB[j]:
        ok = w * d + (1 - w) * np.linalg.norm(PA[i] - PB[j]) <= ft["masked-unmasked" if MA[i] != MB[j] else "masked-masked"]
    else:
        ok = d <= ct["unmasked-unmasked"]
    o = manifest.get(j, {})
    for group in [("all",), (o.get("type"), o.get("placement"))]:
        accepted[group].append(ok); called[group].append(MB[j])
for g in sorted(accepted, key=str):
    print(f"{' '.join(map(str, g)):22s} {len(accepted[g]):5d} pairs  FNMR {100 * (1 - np.mean(accepted[g])):5.1f}%  "
          f"second image called masked {100 * np.mean(called[g]):5.1f}%")
