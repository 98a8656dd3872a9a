#!/usr/bin/env python3
"""Python dlib (dlib-bin wheel) reference timings, same measurements as nn-bench and bench_dlib.cpp.
Usage: bench_dlib.py MODELS CHIPDIR IMAGE.png SECONDS"""
import os
import sys
import time

import dlib
import numpy as np
from PIL import Image

models, chipdir, image, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
chips = [np.array(Image.open(os.path.join(chipdir, n)).convert("RGB")) for n in sorted(os.listdir(chipdir)) if n.endswith(".png")]
rec = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))
print(f"# python dlib {dlib.__version__} (DLIB_USE_BLAS={getattr(dlib, 'DLIB_USE_BLAS', '?')})")


def measure(fn, per):
    fn()
    times, cpu = [], []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) / per)
        cpu.append((time.process_time() - c0) / per)
    times.sort()
    cpu.sort()
    return times[len(times) // 2], cpu[len(cpu) // 2], len(times)


for b in (1, 8, 32):
    batch = [chips[i % len(chips)] for i in range(b)]
    m, c, n = measure(lambda: rec.compute_face_descriptor(batch), b)
    print(f"pydlib embed threads=default batch={b} ms_per_item={m * 1000:.2f} cpu_ms_per_item={c * 1000:.2f} items_per_s={1 / m:.1f} runs={n}")

cnn = dlib.cnn_face_detection_model_v1(os.path.join(models, "mmod_human_face_detector.dat"))
img = np.array(Image.open(image).convert("RGB"))
for up in (0, 1):
    m, c, n = measure(lambda: cnn(img, up), 1)
    print(f"pydlib mmod threads=default upsample={up} image={img.shape[1]}x{img.shape[0]} ms_per_item={m * 1000:.1f} cpu_ms_per_item={c * 1000:.1f} items_per_s={1 / m:.2f} runs={n}")
