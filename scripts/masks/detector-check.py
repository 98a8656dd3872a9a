#!/usr/bin/env python3
"""Prototype of the version-3 mask detector (numpy + scikit-learn), used to choose its features, ridge penalty
and threshold before the Swift trainer (`facet mask-train`) fits the shipped model. Not the measurement of record.
1. Training chips: the LFW-centred chips of the 1,549 images of the 1,468 people outside pairs.txt, with and
   without their TRAIN-family mask, from a `facet mask-train --face-cache` file (plus mirror images).
2. Test chips: the images of /work/cache/lfw/images.txt (pairs.txt people + identification identities), TEST-family
   masked and unmasked, cut with Python dlib from the 5 landmarks `facet eval lfw` uses (central MMOD face, else the
   fallback crop) in the eval cache.
3. Features as MaskDetector.features(version: 3): dense HOG (864) + colour grid (80) + embedding (128);
   L2 logistic regression (C = 0.003 <-> facet mask-train --l2 1/(C n)).
4. Threshold by leave-one-TRAIN-mask-type-out validation (never looks at TEST masks), then the TEST numbers.
Usage: detector-check.py FACE_CACHE EVAL_CACHE_DIR MASKED_TEST_DIR LFW_DIR TRAIN_MANIFEST"""
import sys, json, struct, os, numpy as np, dlib
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
face_cache, eval_cache, masked_dir, lfw_dir, train_manifest = sys.argv[1:6]

def read_face_cache(path):
    d = open(path, 'rb').read(); o = 0; out = {}
    while o + 8 <= len(d):
        n = struct.unpack_from('<q', d, o)[0]; o += 8
        if n <= 0 or n >= 10000: break
        k = d[o:o + n].decode(); o += n
        f, w, h, dim = struct.unpack_from('<4q', d, o); o += 32
        e = np.frombuffer(d, dtype='<f4', count=dim, offset=o); o += dim * 4
        px = np.frombuffer(d, dtype=np.uint8, count=w * h * 3, offset=o).reshape(h, w, 3); o += w * h * 3
        out[k] = (e, px)
    return out

def grey(c): return c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114
def hog(chips, y0=70, y1=150, x0=15, x1=135, cell=10, bins=9):
    out = []
    for s in range(0, len(chips), 512):
        c = chips[s:s + 512]; n = len(c)
        g = np.pad(grey(c.astype(np.float32)), ((0, 0), (1, 1), (1, 1)), mode='edge')
        gx = g[:, y0 + 1:y1 + 1, x0 + 2:x1 + 2] - g[:, y0 + 1:y1 + 1, x0:x1]
        gy = g[:, y0 + 2:y1 + 2, x0 + 1:x1 + 1] - g[:, y0:y1, x0 + 1:x1 + 1]
        mag = np.hypot(gx, gy); ang = np.arctan2(gy, gx); ang[ang < 0] += np.pi
        pos = ang / np.pi * bins - 0.5; lo = np.floor(pos).astype(int); fr = pos - lo
        H = np.zeros((n, y1 - y0, x1 - x0, bins), np.float32)
        np.put_along_axis(H, (lo % bins)[..., None], (mag * (1 - fr))[..., None], 3)
        H1 = np.zeros_like(H); np.put_along_axis(H1, ((lo + 1) % bins)[..., None], (mag * fr)[..., None], 3)
        H = (H + H1).reshape(n, (y1 - y0) // cell, cell, (x1 - x0) // cell, cell, bins).sum((2, 4)).reshape(n, -1)
        out.append(np.sqrt(H / np.maximum(mag.sum((1, 2)), 1e-9)[:, None]))
    return np.concatenate(out)
def colour(chips, cell=15, y0=75, y1=150, x0=15, x1=135):
    c = chips.astype(np.float32); n = len(c)
    ref = np.concatenate([c[:, 52:64, 30:58].reshape(n, -1, 3), c[:, 52:64, 92:120].reshape(n, -1, 3),
                          c[:, 50:66, 66:84].reshape(n, -1, 3)], 1).mean(1)
    rch = ref / (ref.sum(1, keepdims=True) + 1); rl = grey(ref)
    m = c[:, y0:y1, x0:x1].reshape(n, (y1 - y0) // cell, cell, (x1 - x0) // cell, cell, 3).mean((2, 4)).reshape(n, -1, 3)
    ch = m / (m.sum(2, keepdims=True) + 1)
    return np.hstack([np.linalg.norm(ch - rch[:, None, :], axis=2) * 10, np.abs(np.log((grey(m) + 8) / (rl[:, None] + 8)))])
def feats(chips, emb): return np.hstack([hog(chips), colour(chips), emb])

# 1. training chips
fc = read_face_cache(face_cache)
man = {}
for l in open(train_manifest):
    o = json.loads(l); man[o['path']] = o.get('type')
keys = sorted(k.split('masked-train/', 1)[1] for k in fc if '/masked-train/' in k and k.startswith('centred:'))
mk = lambda p: f"centred:{os.path.dirname(train_manifest)}/{p}"
uk = lambda p: f"centred:{os.path.dirname(os.path.dirname(train_manifest))}/unmasked/{p}"
keys = [p for p in keys if mk(p) in fc and uk(p) in fc]
M = np.stack([fc[mk(p)][1] for p in keys]); P = np.stack([fc[uk(p)][1] for p in keys])
EM = np.stack([fc[mk(p)][0] for p in keys]); EP = np.stack([fc[uk(p)][0] for p in keys])
types = np.array([man[p] for p in keys]); n = len(keys)
X = feats(np.concatenate([M, P, M[:, :, ::-1], P[:, :, ::-1]]), np.concatenate([EM, EP, EM, EP]))
y = np.r_[np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)]; ids = np.concatenate([np.arange(n)] * 4)
print(f"training: {n} people-images x (masked, unmasked) x (as is, mirrored)", flush=True)

# 2. test chips
def load(cond):
    faces = {}
    for fn in [f"{eval_cache}/{cond}.jsonl", f"{eval_cache}/{cond}.eval.jsonl"]:
        for line in open(fn):
            try: o = json.loads(line)
            except ValueError: continue
            if 'width' not in o: continue
            fs = o.get('faces') or []; w, h = o['width'], o['height']
            f = min(fs, key=lambda f: abs((f['box'][0] + f['box'][2]) / 2 - w / 2) + abs((f['box'][1] + f['box'][3]) / 2 - h / 2)) if fs else o.get('fallback')
            if f: faces[o['image'][2:]] = f
    return faces
def chips_of(cond, root):
    faces = load(cond); names = [l.strip()[2:] for l in open('/work/cache/lfw/images.txt') if l.strip()]
    cs, es = [], []
    for nm in names:
        f = faces[nm]; b = f['box']
        det = dlib.full_object_detection(dlib.rectangle(*map(int, b)), dlib.points([dlib.point(int(x), int(y)) for x, y in f['landmarks']]))
        cs.append(dlib.get_face_chip(np.array(Image.open(os.path.join(root, nm)).convert('RGB')), det, size=150, padding=0.25))
        es.append(f['embedding'])
    return np.stack(cs), np.array(es)
cm, em = chips_of('masked-test', masked_dir); cp, ep = chips_of('unmasked', lfw_dir)
TM, TP = feats(cm, em), feats(cp, ep)

# 3./4. leave-one-type-out threshold, then the held-out TEST numbers
ths = np.linspace(0.02, 0.98, 49); accs = []
for t in sorted(set(types)):
    held = np.isin(ids, np.where(types == t)[0])
    sc = StandardScaler().fit(X[~held]); lr = LogisticRegression(C=0.003, max_iter=3000).fit(sc.transform(X[~held]), y[~held])
    p = lr.predict_proba(sc.transform(X[held]))[:, 1]; yy = y[held]
    accs.append([((p[yy == 1] >= th).mean() + (p[yy == 0] < th).mean()) / 2 for th in ths])
    print(f"leave out {t}: accuracy at 0.5 {accs[-1][24]:.4f}", flush=True)
th = ths[int(np.argmax(np.mean(accs, 0)))]
sc = StandardScaler().fit(X); lr = LogisticRegression(C=0.003, max_iter=3000).fit(sc.transform(X), y)
pm = lr.predict_proba(sc.transform(TM))[:, 1]; pp = lr.predict_proba(sc.transform(TP))[:, 1]
for t in [0.5, th]:
    print(f"threshold {t:.2f}: TEST masked recall {(pm >= t).mean():.4f}, unmasked specificity {(pp < t).mean():.4f}, "
          f"accuracy {((pm >= t).mean() + (pp < t).mean()) / 2:.4f} ({len(pm)} + {len(pp)} faces)")
