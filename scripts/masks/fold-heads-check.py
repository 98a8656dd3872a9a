#!/usr/bin/env python3
"""Quick check of per-fold unmasking heads on LFW View 2 from the embedding caches (no images, seconds):
10-fold accuracy (threshold from the other nine folds) and FNMR at FMR 1e-3 over every cross-identity pair within
each fold, for unmasked-unmasked, masked-unmasked (second image masked) and masked-masked, frozen vs heads.
The heads are applied as `facet eval lfw --fold-heads` does: head of the person's fold, only to faces whose cached
mask probability is >= 0.5. Used to choose `facet mask-heads` settings; the reported numbers come from facet eval lfw.
Usage: fold-heads-check.py CACHE_DIR PAIRS HEADS_DIR"""
import base64, json, sys, numpy as np
from view2 import read_pairs, key, person_folds, read_periocular as read_periocular_at

cache, pairs_path, heads_dir = sys.argv[1:4]

def read_cache(name):
    emb, prob = {}, {}
    for fn in [f"{cache}/{name}.jsonl", f"{cache}/{name}.rev.jsonl", f"{cache}/{name}.eval.jsonl"]:
        try: lines = open(fn)
        except OSError: continue
        for l in lines:
            try: o = json.loads(l)
            except ValueError: continue
            im = o["image"][2:] if o["image"].startswith("./") else o["image"]
            if "mask_probability" in o and "faces" not in o: prob[im] = o["mask_probability"]; continue
            fs = o.get("faces")
            if fs:
                w, h = o["width"], o["height"]
                f = min(fs, key=lambda f: ((f["box"][0] + f["box"][2]) / 2 - w / 2) ** 2 + ((f["box"][1] + f["box"][3]) / 2 - h / 2) ** 2)
                emb[im] = np.array(f["embedding"], dtype=np.float64)
            elif "fallback" in o:
                emb[im] = np.array(o["fallback"]["embedding"], dtype=np.float64)
    return emb, prob

def read_periocular(name):
    """Periocular embeddings of this cache by image key; used by the scripts that exec this file's first half
    (verify-check.py, detector-periocular-check.py)."""
    return read_periocular_at(cache, name)

pairs, nfold, per = read_pairs(pairs_path)
pfolds = person_folds(pairs)

def load_head(k): return load_head_file(f"{heads_dir}/unmasking-head-fold-{k}.json")
def load_head_file(path):
    h = json.load(open(path))
    d, hd = h["inputDimension"], h["hiddenDimension"]
    f = lambda s: np.frombuffer(base64.b64decode(s), dtype="<f4").astype(np.float64)
    return f(h["w1"]).reshape(hd, d), f(h["b1"]), f(h["w2"]).reshape(d, hd), f(h["b2"])
import os
if os.path.isfile(heads_dir):   # one head for everybody (e.g. the bundled one, trained outside pairs.txt)
    _h = heads_dir; heads_dir = os.path.dirname(_h) or "."
    load_one = lambda: load_head_file(_h)
heads = []
while os.path.exists(f"{heads_dir}/unmasking-head-fold-{len(heads)}.json") and not os.path.isfile(sys.argv[3]):
    heads.append(load_head(len(heads)))
if os.path.isfile(sys.argv[3]): heads = [load_one()]
G = len(heads)
def apply(k, x):
    w1, b1, w2, b2 = heads[k]
    z = w1 @ x + b1; z = np.where(z > 0, z, 0.2 * z)
    y = x + w2 @ z + b2
    return y / np.linalg.norm(y)

U, Up = read_cache("unmasked"); M, Mp = read_cache("masked-test")
images = sorted({key(p[0], p[1]) for p in pairs} | {key(p[2], p[3]) for p in pairs})
fold_of = {im: min(pfolds[im.split("/")[0]]) for im in images}      # View 2 fold (impostor sets)
group_of = {im: min(f % G for f in pfolds[im.split("/")[0]]) for im in images}   # which head
def tmpl(masked, aware):
    E, P = (M, Mp) if masked else (U, Up)
    out = {}
    for im in images:
        x = E[im] / np.linalg.norm(E[im])
        out[im] = apply(group_of[im], x) if aware and P.get(im, 0) >= 0.5 else x
    return out

def fold_metrics(d, impostor_matrix):
    """Pair distances `d` (pairs order) -> 10-fold accuracy mean and std (threshold from the other nine folds) and
    FNMR at FMR 1e-3 over every cross-identity pair within each fold; `impostor_matrix(ims)` gives the distances
    between the fold's images `ims` (rows: first side, columns: second side). Shared with weight-check.py."""
    same = np.array([p[4] for p in pairs]); fold = np.array([p[5] for p in pairs])
    accs = []
    for k in range(nfold):
        tr = fold != k
        cand = np.unique(d[tr]); best, bt = -1, 0
        for t in cand[::max(1, len(cand) // 2000)]:
            a = np.mean((d[tr] <= t) == same[tr])
            if a > best: best, bt = a, t
        accs.append(np.mean((d[~tr] <= bt) == same[~tr]))
    imp = []
    for k in range(nfold):
        ims = [im for im in images if fold_of[im] == k]
        D = impostor_matrix(ims)
        names = np.array([i.split("/")[0] for i in ims])
        diff = names[:, None] != names[None, :]
        iu = np.triu(np.ones_like(diff), 1).astype(bool)
        imp.append(D[diff & iu])
    imp = np.sort(np.concatenate(imp))
    gen = d[same]
    t = imp[int(1e-3 * len(imp))]
    return np.mean(accs), np.std(accs), np.mean(gen >= t)

def unit_distances(A, B, ims):
    X = np.stack([A[i] for i in ims]); Y = np.stack([B[i] for i in ims])
    return np.sqrt(np.maximum(2 - 2 * X @ Y.T, 0))

def evaluate(A, B):
    d = np.array([np.linalg.norm(A[key(p[0], p[1])] - B[key(p[2], p[3])]) for p in pairs])
    return fold_metrics(d, lambda ims: unit_distances(A, B, ims))

for name, fm, sm in [("unmasked-unmasked", False, False), ("masked-unmasked", False, True), ("masked-masked", True, True)]:
    row = []
    for aware in (False, True):
        acc, sd, fnmr = evaluate(tmpl(fm, aware), tmpl(sm, aware))
        row.append(f"{'heads ' if aware else 'frozen'} acc {100*acc:.2f} ± {100*sd:.2f}  FNMR@1e-3 {100*fnmr:.2f}")
    print(f"{name:18s} " + " | ".join(row))
