#!/usr/bin/env python3
"""Which features make a mask detector (session 8 prototype, docs/masks.md): logistic regressions fitted on the
training faces (people outside pairs.txt, TRAIN masks, with mirror images) and scored on the 6,000 held-out faces
(pairs.txt people, TEST masks) that `facet mask-train --dump-detector-data DIR` writes: version 3's features ("v3")
and the face ResNet's activations after residual blocks 6, 9, 12 and 13. Prints held-out accuracy (masked recall /
unmasked specificity) at thresholds 0.3-0.6 and the best threshold's. Needs numpy and scikit-learn; minutes.
Usage: scripts/masks/detector-features-check.py DIR [FEATURE,...] [C,...]
  FEATURE: v3 b13 b12 b9 b9low b6p3 v3+b13 v3+b12 v3+b9low (default: all)"""
import json, sys, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

D = sys.argv[1]
dims = {"v3": 1072, "b6": 64 * 17 * 17, "b9": 128 * 8 * 8, "b12": 256 * 4 * 4, "b13": 256 * 2 * 2}

def load(name):
    meta = [json.loads(l) for l in open(f"{D}/{name}-meta.jsonl")]
    X = {k: np.fromfile(f"{D}/{name}-{k}.f32", dtype=np.float32).reshape(len(meta), d) for k, d in dims.items()}
    return X, np.array([m["type"] != "none" for m in meta])

def pooled(X, k, c, h, w, rows=None, pool=1):
    a = X[k].reshape(-1, c, h, w)
    if rows is not None: a = a[:, :, rows[0]:rows[1], :]
    if pool > 1:
        H, W = a.shape[2] // pool * pool, a.shape[3] // pool * pool
        a = a[:, :, :H, :W].reshape(a.shape[0], c, H // pool, pool, W // pool, pool).mean(axis=(3, 5))
    return a.reshape(a.shape[0], -1)

feats = {
    "v3": lambda X: X["v3"], "b13": lambda X: X["b13"], "b12": lambda X: X["b12"], "b9": lambda X: X["b9"],
    "b9low": lambda X: pooled(X, "b9", 128, 8, 8, rows=(3, 8)),
    "b6p3": lambda X: pooled(X, "b6", 64, 17, 17, rows=(7, 17), pool=3),
    "v3+b13": lambda X: np.hstack([X["v3"], X["b13"]]), "v3+b12": lambda X: np.hstack([X["v3"], X["b12"]]),
    "v3+b9low": lambda X: np.hstack([X["v3"], pooled(X, "b9", 128, 8, 8, rows=(3, 8))]),
}
Xt, yt = load("train"); Xh, yh = load("heldout")
print(f"train {len(yt)} rows ({yt.mean():.2f} masked), held out {len(yh)} ({yh.mean():.2f} masked)")
names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(feats)
Cs = [float(c) for c in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0.01, 0.1]
for name in names:
    sc = StandardScaler().fit(feats[name](Xt))
    A, B = sc.transform(feats[name](Xt)), sc.transform(feats[name](Xh))
    for C in Cs:
        m = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(A, yt)
        p = m.predict_proba(B)[:, 1]
        res = [f"{t}: {100 * ((p >= t) == yh).mean():.2f} ({100 * (p >= t)[yh].mean():.1f}/{100 * (p < t)[~yh].mean():.1f})" for t in (0.3, 0.4, 0.5, 0.6)]
        best = max(((p >= t) == yh).mean() for t in np.linspace(0.05, 0.95, 91))
        print(f"{name} ({A.shape[1]} features) C {C}: train {100 * (m.predict(A) == yt).mean():.2f}; held out", ", ".join(res), f"; best {100 * best:.2f}", flush=True)
