#!/usr/bin/env python3
"""Regenerate the dlib reference fixtures for Facet's CNNs (Tests/FacetFaceTests/Fixtures/nn/).

  * chips/*.png      150x150 aligned face chips cut by dlib.get_face_chip (5-point landmarks, padding 0.25)
  * descriptors.json dlib's 128-D descriptor of each chip (compute_face_descriptor of the chip), plus the
                     jittered descriptor (num_jitters=4) computed by a fresh model object, chip by chip in order
  * images/*.png     small photos (decoded by Pillow, stored losslessly so no JPEG decoder question arises)
  * mmod.json        dlib.cnn_face_detection_model_v1 detections at upsample 0 and 1: [left, top, right, bottom]
                     (dlib inclusive rectangles) and confidence

Usage: scripts/make-nn-goldens.py [--datasets /work/shared/datasets] [--models models]
Needs: pip install dlib-bin face-recognition-models numpy pillow (installed if missing).
"""
import argparse
import json
import os
import subprocess
import sys


def ensure(pkgs):
    missing = []
    for mod, pip_name in pkgs:
        try:
            __import__(mod)
        except ImportError:
            missing.append(pip_name)
    if missing:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + missing)


ensure([("dlib", "dlib-bin"), ("face_recognition_models", "face-recognition-models"), ("numpy", "numpy"), ("PIL", "pillow")])

import dlib  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# LFW images for chips (the first face HOG finds in each).
CHIP_SOURCES = [
    "lfw_color/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "lfw_color/lfw/Serena_Williams/Serena_Williams_0002.jpg",
    "lfw_color/lfw/Colin_Powell/Colin_Powell_0001.jpg",
    "lfw_color/lfw/Halle_Berry/Halle_Berry_0001.jpg",
    "face_fixtures/face_recognition/examples/obama_small.jpg",
]

# Photos for the detector: (source, name, optional width to downscale to with Pillow before storing).
DETECTOR_SOURCES = [
    ("lfw_color/lfw/George_W_Bush/George_W_Bush_0001.jpg", "lfw_bush", None),
    ("lfw_color/lfw/Serena_Williams/Serena_Williams_0002.jpg", "lfw_serena", None),
    ("face_fixtures/face_recognition/examples/obama_small.jpg", "obama_small", None),
    ("face_fixtures/face_recognition/examples/two_people.jpg", "two_people", 400),
]


def model_path(models, name):
    p = os.path.join(models, name)
    if os.path.exists(p):
        return p
    import face_recognition_models
    return os.path.join(os.path.dirname(face_recognition_models.__file__), "models", name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=os.environ.get("FACET_DATASETS", "/work/shared/datasets"))
    ap.add_argument("--models", default=os.environ.get("FACET_MODELS", os.path.join(ROOT, "models")))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/FacetFaceTests/Fixtures/nn"))
    args = ap.parse_args()

    os.makedirs(os.path.join(args.out, "chips"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)

    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(model_path(args.models, "shape_predictor_5_face_landmarks.dat"))
    rec_path = model_path(args.models, "dlib_face_recognition_resnet_model_v1.dat")
    rec = dlib.face_recognition_model_v1(rec_path)

    chips = []
    for src in CHIP_SOURCES:
        img = np.array(Image.open(os.path.join(args.datasets, src)).convert("RGB"))
        dets = hog(img, 1)
        if len(dets) == 0:
            sys.exit(f"no face found by HOG in {src}")
        shape = sp(img, dets[0])
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        name = os.path.splitext(os.path.basename(src))[0] + ".png"
        Image.fromarray(chip).save(os.path.join(args.out, "chips", name), optimize=True)
        # Re-read what was stored, so the reference is computed from exactly the committed pixels.
        stored = np.array(Image.open(os.path.join(args.out, "chips", name)).convert("RGB"))
        assert (stored == chip).all()
        d = rec.compute_face_descriptor(stored)
        chips.append({"chip": "chips/" + name, "source": src, "descriptor": [float(x) for x in d]})

    # Jitter: a fresh model object, chips in the order above, num_jitters=4 (dlib::rand advances across calls).
    jrec = dlib.face_recognition_model_v1(rec_path)
    for c in chips:
        stored = np.array(Image.open(os.path.join(args.out, c["chip"])).convert("RGB"))
        c["jitter4"] = [float(x) for x in jrec.compute_face_descriptor(stored, num_jitters=4)]

    with open(os.path.join(args.out, "descriptors.json"), "w") as f:
        json.dump({"dlib_version": dlib.__version__, "model": "dlib_face_recognition_resnet_model_v1.dat",
                   "jitter_order": "fresh model object, chips in file order, num_jitters=4",
                   "chips": chips}, f, indent=1)

    cnn = dlib.cnn_face_detection_model_v1(model_path(args.models, "mmod_human_face_detector.dat"))
    images = []
    for src, name, width in DETECTOR_SOURCES:
        im = Image.open(os.path.join(args.datasets, src)).convert("RGB")
        if width is not None and im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.BILINEAR)
        path = os.path.join(args.out, "images", name + ".png")
        im.save(path, optimize=True)
        img = np.array(Image.open(path).convert("RGB"))
        entry = {"image": "images/" + name + ".png", "source": src, "width": img.shape[1], "height": img.shape[0]}
        for up in (0, 1):
            dets = cnn(img, up)
            entry[f"upsample{up}"] = [
                {"box": [d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], "confidence": float(d.confidence)}
                for d in dets
            ]
        images.append(entry)
        print(name, img.shape, [len(entry["upsample0"]), len(entry["upsample1"])])

    with open(os.path.join(args.out, "mmod.json"), "w") as f:
        json.dump({"dlib_version": dlib.__version__, "model": "mmod_human_face_detector.dat", "images": images}, f, indent=1)


if __name__ == "__main__":
    main()
