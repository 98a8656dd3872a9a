#!/usr/bin/env python3
"""Why masked faces are re-aligned (docs/masks.md, session 11), with dlib itself (pip dlib-bin +
face-recognition-models): for the first two images of N random people with >= 2 images in IMAGES_TXT, the 5-point
landmarks of image 1 with and without its TEST-family mask (MMOD upsample 0, else the LFW-centred box), how far each
point moves, whether the masked nose height says anything about the true one (correlation in the eye frame), and
the embedding of the masked image 1 with its own landmarks vs. with the unmasked image's ("oracle") against image 2
unmasked: FNMR at FMR 1e-2 / 1e-3 over all N x (N-1) cross-person pairs, and the mean distance to image 1 unmasked.
Session 11: N=300 of View 2's and the identification identities' images (TEST masks; analysis only — the nose height
was chosen on other people with TRAIN masks, scripts/masks/nose-sweep.py). ~8 min on a busy core.
Usage: scripts/masks/masked-landmarks-check.py IMAGES_TXT UNMASKED_DIR MASKED_DIR N [MODELS_DIR]"""
import os, sys, random, numpy as np, dlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from five_point import T, sim, models, central, normalised
LIST, U, MK, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
M = sys.argv[5] if len(sys.argv) > 5 else os.environ.get('FACET_MODELS', 'models')
det, sp, rec = models(M)
people = {}
for l in open(LIST):
    p = l.strip()[2:]
    if p: people.setdefault(p.split('/')[0], []).append(p)
multi = [k for k, v in people.items() if len(v) >= 2]
random.seed(0); random.shuffle(multi)
Eu, Em, Eo, Eb, PU, PM = [], [], [], [], [], []
for i, person in enumerate(multi[:N]):
    a, b = people[person][0], people[person][1]
    um = dlib.load_rgb_image(os.path.join(U, a)); mk = dlib.load_rgb_image(os.path.join(MK, a)); ub = dlib.load_rgb_image(os.path.join(U, b))
    ru = central(det(um, 0)); rm = central(det(mk, 0)); rb = central(det(ub, 0))
    Su, Sm, Sb = sp(um, ru), sp(mk, rm), sp(ub, rb)
    PU.append([[q.x, q.y] for q in Su.parts()]); PM.append([[q.x, q.y] for q in Sm.parts()])
    Eu.append(rec.compute_face_descriptor(um, Su)); Em.append(rec.compute_face_descriptor(mk, Sm))
    Eo.append(rec.compute_face_descriptor(mk, dlib.full_object_detection(rm, Su.parts()))); Eb.append(rec.compute_face_descriptor(ub, Sb))
    if i % 50 == 49: print(f'{i + 1}/{N}', file=sys.stderr, flush=True)
PU, PM = np.array(PU, float), np.array(PM, float)
dl = np.abs(PU - PM).max(axis=2)
for k in range(5): print(f'point {k}: moved mean {dl[:, k].mean():.2f} px, median {np.median(dl[:, k]):.1f}, 90 % {np.percentile(dl[:, k], 90):.1f}')
fu = np.array([sim(p[:4], T[:4])(p)[4] for p in PU]); fm = np.array([sim(p[:4], T[:4])(p)[4] for p in PM])
print(f'nose in the eye frame, masked vs unmasked: correlation x {np.corrcoef(fm[:, 0], fu[:, 0])[0, 1]:.2f}, y {np.corrcoef(fm[:, 1], fu[:, 1])[0, 1]:.2f}; '
      f'unmasked nose y mean {fu[:, 1].mean():.4f} std {fu[:, 1].std():.4f}')

G, S = normalised(Eb), normalised(Eu); n = len(G)
for name, E in (('own landmarks', Em), ('oracle landmarks', Eo)):
    P = normalised(E); D = np.linalg.norm(P[:, None] - G[None], axis=2); g = np.diag(D); imp = np.sort(D[~np.eye(n, dtype=bool)])
    f = [np.mean(g >= imp[int(r * len(imp))]) * 100 for r in (1e-2, 1e-3)]
    print(f'masked, {name}: FNMR@FMR1e-2 {f[0]:.1f}%  FNMR@FMR1e-3 {f[1]:.1f}%  distance to the same image unmasked {np.linalg.norm(P - S, axis=1).mean():.4f}')
