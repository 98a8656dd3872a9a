#!/usr/bin/env python3
"""Is the distance between a face's full and periocular embeddings a mask cue? (session 7, docs/masks.md)
A masked face's full embedding already "sees" an occluded lower face, so it sits closer to its own periocular
embedding. On a `facet eval lfw --periocular` cache (unmasked + TEST-masked LFW images): the distance per condition,
and logistic regressions on [logit p(mask) of the bundled detector, distance] (+ the 128-D difference), fitted on half
of the people (stable CRC32 split) and scored on the other half. TEST masks on both halves: a signal, not a held-out
number (a detector must be trained on TRAIN masks; facet mask-train). Needs numpy and scikit-learn; ~1 min.
Usage: scripts/masks/detector-periocular-check.py CACHE_DIR PAIRS"""
import os, sys, json, zlib, numpy as np
from sklearn.linear_model import LogisticRegression
here = os.path.dirname(os.path.abspath(__file__))
R = os.path.join(here, "..", "..", "Sources", "FacetMasking", "Resources") + "/"
sys.argv = [sys.argv[0], sys.argv[1], sys.argv[2], R + "unmasking-head-v1.json"]
exec(open(os.path.join(here, "fold-heads-check.py")).read().split('for name, fm, sm in')[0])
THR = json.load(open(R + "mask-detector-v4.json"))["threshold"]
PU = read_periocular("unmasked"); PM = read_periocular("masked-test")
ims = sorted(set(PU) & set(PM) & set(U) & set(M))
def unit(v): return v / np.linalg.norm(v)
def rows(E, P, Pp):
    diff = np.array([unit(E[i]) - unit(P[i]) for i in ims])
    return np.linalg.norm(diff, axis=1), np.array([Pp.get(i, 0.5) for i in ims]), diff
du, pu, vu = rows(U, PU, Up); dm, pm, vm = rows(M, PM, Mp)
print(f"{len(ims)} images per condition; |full - periocular|: unmasked {du.mean():.3f} ± {du.std():.3f}, masked {dm.mean():.3f} ± {dm.std():.3f}")
y = np.r_[np.zeros(len(ims)), np.ones(len(ims))]
def lg(p): p = np.clip(p, 1e-6, 1 - 1e-6); return np.log(p / (1 - p))
half = np.array([zlib.crc32(i.split("/")[0].encode()) % 2 for i in ims]); hh = np.r_[half, half]
d = np.r_[du, dm]; p = np.r_[pu, pm]; V = np.r_[vu, vm]
print(f"bundled detector alone (threshold {THR}): {100 * np.mean((p >= THR) == y):.2f} %")
print(f"distance alone, best threshold: {100 * max(np.mean((d <= t) == y) for t in np.linspace(0.05, 0.6, 400)):.2f} %")
for name, F in (("detector logit + distance", np.c_[lg(p), d]), ("detector logit + distance + 128-D difference", np.c_[lg(p), d, V])):
    accs, base = [], []
    for tr in (0, 1):
        te = hh != tr
        m = LogisticRegression(C=1.0, max_iter=3000).fit(F[hh == tr], y[hh == tr])
        accs.append(100 * m.score(F[te], y[te])); base.append(100 * np.mean((p[te] >= THR) == y[te]))
    print(f"{name}: fitted on one half, scored on the other: {accs[0]:.2f} / {accs[1]:.2f} % (detector alone on those halves {base[0]:.2f} / {base[1]:.2f} %)")
