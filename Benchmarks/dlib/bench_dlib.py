#!/usr/bin/env python3
"""Python dlib (dlib-bin wheel) reference timings, same measurements as nn-bench and bench_dlib.cpp.
Usage: bench_dlib.py MODELS CHIPDIR IMAGE.png SECONDS WHAT [PIPELINE_DIR]   (WHAT: comma list of embed,mmod,pipeline)
The pipeline is what face_recognition does per image: dlib.load_rgb_image, cnn_face_detection_model_v1 at upsample 0,
the 5-point shape_predictor, compute_face_descriptor(img, shapes) (chips of 150 px, padding 0.25)."""
import os
import sys
import time

import dlib
import numpy as np
from PIL import Image

models, chipdir, image, seconds, what = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5].split(",")
pipedir = sys.argv[6] if len(sys.argv) > 6 else None
rec = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))
print(f"# python dlib {dlib.__version__} (DLIB_USE_BLAS={getattr(dlib, 'DLIB_USE_BLAS', '?')})")


def measure(label, desc, fn, per, min_runs=3, warm_up=True):
    if warm_up:
        fn()
    times, cpu = [], []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < min_runs:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) / per)
        cpu.append((time.process_time() - c0) / per)
    times.sort()
    cpu.sort()
    m = times[len(times) // 2]
    print(f"pydlib {label} threads=default {desc} ms_per_item={m * 1000:.2f} min_ms_per_item={times[0] * 1000:.2f} "
          f"cpu_ms_per_item={cpu[len(cpu) // 2] * 1000:.2f} items_per_s={1 / m:.2f} runs={len(times)}", flush=True)


if "embed" in what:
    chips = [np.array(Image.open(os.path.join(chipdir, n)).convert("RGB")) for n in sorted(os.listdir(chipdir)) if n.endswith(".png")]
    for b in (1, 8, 32):
        batch = [chips[i % len(chips)] for i in range(b)]
        measure("embed", f"batch={b}", lambda: rec.compute_face_descriptor(batch), b)

cnn = dlib.cnn_face_detection_model_v1(os.path.join(models, "mmod_human_face_detector.dat"))
if "mmod" in what:
    img = np.array(Image.open(image).convert("RGB"))
    for up in (0, 1):
        measure("mmod", f"upsample={up} image={img.shape[1]}x{img.shape[0]}", lambda: cnn(img, up), 1)

if "pipeline" in what and pipedir:
    sp = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
    files = sorted(os.path.join(pipedir, n) for n in os.listdir(pipedir) if n.endswith(".jpg"))
    faces = [0]

    def run():
        faces[0] = 0
        for f in files:
            img = dlib.load_rgb_image(f)
            dets = cnn(img, 0)
            shapes = dlib.full_object_detections()
            for d in dets:
                shapes.append(sp(img, d.rect))
            faces[0] += len(shapes)
            if len(shapes):
                rec.compute_face_descriptor(img, shapes)

    # The wheel takes about 0.5-2.5 s per image here: one timed pass over the images (no warm-up pass; the models are
    # loaded above), at least SECONDS long.
    measure("pipeline", f"upsample=0 images={len(files)}", run, len(files), min_runs=1, warm_up=False)
    print(f"# pipeline faces found: {faces[0]} in {len(files)} images")
