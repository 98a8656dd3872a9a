#!/usr/bin/env python3
"""Chooses the masked-face alignment (MaskAwareMatcher.bundledMaskedNoseY; docs/masks.md, session 11) on people
outside LFW View 2's pairs.txt with TRAIN-family masks, using dlib itself (pip dlib-bin + face-recognition-models).
For N random images: MMOD (upsample 0, else the LFW-centred box) and the 5-point predictor on the masked copy, then
the ResNet embedding of the masked copy with dlib's own landmarks ("own") and with the nose point placed from the eyes
at each template height Y (x kept in the eye frame), against the unmasked copy's standard embedding.
Prints per variant FNMR at FMR 1e-2 / 1e-3 of masked-vs-same-image-unmasked genuine pairs against every other person's
unmasked image, and the mean genuine distance. Session 11: N=400 (~15 min on a busy core).
Usage: scripts/masks/nose-sweep.py UNMASKED_DIR MASKED_DIR N [MODELS_DIR]
  UNMASKED_DIR: LFW people outside pairs.txt (scripts/masks/make-mask-data.sh OUT/train/unmasked);
  MASKED_DIR: facet mask-dataset --in UNMASKED_DIR --out MASKED_DIR --split train --centred"""
import os, sys, random, numpy as np, dlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from five_point import T, sim, models, central, normalised
U, MK, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
M = sys.argv[4] if len(sys.argv) > 4 else os.environ.get('FACET_MODELS', 'models')
det, sp, rec = models(M)
imgs = sorted(os.path.relpath(os.path.join(r, f), U) for r, _, fs in os.walk(U, followlinks=True) for f in fs if f.endswith('.jpg'))
random.seed(1); random.shuffle(imgs); imgs = imgs[:N]
YS = [0.42, 0.47, 0.52, 0.57, 0.6237]
def shape(p, x, y):
    nose = sim(T[:4], p[:4])(np.array([[x, y]]))[0]
    rect = dlib.rectangle(int(p[:, 0].min()), int(p[:, 1].min()), int(p[:, 0].max()), int(p[:, 1].max()))
    return dlib.full_object_detection(rect, [dlib.point(int(round(a)), int(round(b))) for a, b in p[:4]] + [dlib.point(int(round(nose[0])), int(round(nose[1])))])
rows = {k: [] for k in ['unmasked', 'own'] + YS}
for i, a in enumerate(imgs):
    um = dlib.load_rgb_image(os.path.join(U, a)); mk = dlib.load_rgb_image(os.path.join(MK, a))
    Su = sp(um, central(det(um, 0))); Sm = sp(mk, central(det(mk, 0)))
    pm = np.array([[q.x, q.y] for q in Sm.parts()], float); x = sim(pm[:4], T[:4])(pm)[4, 0]
    rows['unmasked'].append(rec.compute_face_descriptor(um, Su)); rows['own'].append(rec.compute_face_descriptor(mk, Sm))
    for y in YS: rows[y].append(rec.compute_face_descriptor(mk, shape(pm, x, y)))
    if i % 50 == 49: print(f'{i + 1}/{len(imgs)}', file=sys.stderr, flush=True)

G = normalised(rows['unmasked']); n = len(G)
for k in ['own'] + YS:
    P = normalised(rows[k]); D = np.linalg.norm(P[:, None] - G[None], axis=2); g = np.diag(D); imp = np.sort(D[~np.eye(n, dtype=bool)])
    f = [np.mean(g >= imp[int(r * len(imp))]) * 100 for r in (1e-2, 1e-3)]
    print(f'{str(k):7s} FNMR@FMR1e-2 {f[0]:5.1f}%  FNMR@FMR1e-3 {f[1]:5.1f}%  mean genuine distance {g.mean():.4f}')
