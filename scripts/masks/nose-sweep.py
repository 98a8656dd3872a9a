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
U, MK, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
M = (sys.argv[4] if len(sys.argv) > 4 else os.environ.get('FACET_MODELS', 'models')) + '/'
T = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677), (0.1205750620789, 0.2137274526848),
              (0.3340850613712, 0.2290642403242), (0.4901123135679, 0.6277975316475)])   # dlib's 5-point template
def sim(src, dst):   # least-squares similarity src -> dst
    ms, md = src.mean(0), dst.mean(0); s = src - ms; d = dst - md
    a = (s * d).sum(); b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum(); n = (s ** 2).sum()
    A = np.array([[a / n, -b / n], [b / n, a / n]]); return lambda p: (np.asarray(p) - ms) @ A.T + md
det = dlib.cnn_face_detection_model_v1(M + 'mmod_human_face_detector.dat')
sp = dlib.shape_predictor(M + 'shape_predictor_5_face_landmarks.dat')
rec = dlib.face_recognition_model_v1(M + 'dlib_face_recognition_resnet_model_v1.dat')
imgs = sorted(os.path.relpath(os.path.join(r, f), U) for r, _, fs in os.walk(U, followlinks=True) for f in fs if f.endswith('.jpg'))
random.seed(1); random.shuffle(imgs); imgs = imgs[:N]
FB = dlib.rectangle(77, 79, 181, 181)
YS = [0.42, 0.47, 0.52, 0.57, 0.6237]
def central(ds): return min(ds, key=lambda d: (d.rect.center().x - 125) ** 2 + (d.rect.center().y - 125) ** 2).rect if ds else None
def shape(p, x, y):
    nose = sim(T[:4], p[:4])(np.array([[x, y]]))[0]
    rect = dlib.rectangle(int(p[:, 0].min()), int(p[:, 1].min()), int(p[:, 0].max()), int(p[:, 1].max()))
    return dlib.full_object_detection(rect, [dlib.point(int(round(a)), int(round(b))) for a, b in p[:4]] + [dlib.point(int(round(nose[0])), int(round(nose[1])))])
rows = {k: [] for k in ['unmasked', 'own'] + YS}
for i, a in enumerate(imgs):
    um = dlib.load_rgb_image(os.path.join(U, a)); mk = dlib.load_rgb_image(os.path.join(MK, a))
    Su = sp(um, central(det(um, 0)) or FB); Sm = sp(mk, central(det(mk, 0)) or FB)
    pm = np.array([[q.x, q.y] for q in Sm.parts()], float); x = sim(pm[:4], T[:4])(pm)[4, 0]
    rows['unmasked'].append(rec.compute_face_descriptor(um, Su)); rows['own'].append(rec.compute_face_descriptor(mk, Sm))
    for y in YS: rows[y].append(rec.compute_face_descriptor(mk, shape(pm, x, y)))
    if i % 50 == 49: print(f'{i + 1}/{len(imgs)}', file=sys.stderr, flush=True)
def nz(v): v = np.array(v); return v / np.linalg.norm(v, axis=1, keepdims=True)
G = nz(rows['unmasked']); n = len(G)
for k in ['own'] + YS:
    P = nz(rows[k]); D = np.linalg.norm(P[:, None] - G[None], axis=2); g = np.diag(D); imp = np.sort(D[~np.eye(n, dtype=bool)])
    f = [np.mean(g >= imp[int(r * len(imp))]) * 100 for r in (1e-2, 1e-3)]
    print(f'{str(k):7s} FNMR@FMR1e-2 {f[0]:5.1f}%  FNMR@FMR1e-3 {f[1]:5.1f}%  mean genuine distance {g.mean():.4f}')
