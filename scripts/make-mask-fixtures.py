#!/usr/bin/env python3
"""Regenerate the FacetMasking test fixtures and the template resources.

1. Fixtures: a few LFW photos and their dlib 68-point landmarks.

For each chosen LFW image the script copies the JPEG byte for byte into
Tests/FacetMaskingTests/Fixtures/faces/ and writes NAME.json beside it with the largest face found by
dlib's HOG frontal face detector (upsample 1) and the 68 landmarks of dlib's
shape_predictor_68_face_landmarks.dat (iBUG 300-W layout: 0-16 jaw, 17-26 brows, 27-35 nose,
36-47 eyes, 48-67 mouth).

2. Resources (Sources/FacetMasking/Resources/): the MaskTheFace (MIT) templates FacetMasking uses,
cropped to their alpha box, downscaled to at most TEMPLATE_SIZE px and stored as grey+alpha PNG (the
renderer recolours them from their luminance), with the anchor points a..f of masks.cfg moved into the
new pixel frame (templates.json). Only frontal and `_left` variants are stored: MaskTheFace's `_right`
PNGs are mirror images of `_left` (byte-identical for N95, KN95, cloth and gas; surgical differs by a
few grey levels), so the renderer mirrors `_left`. The turned gas respirator is not used (see
MaskType.hasSideTemplates). Eight of the pattern textures, 128x128 RGB PNG.

Usage: python3 scripts/make-mask-fixtures.py [--lfw DIR] [--models DIR] [--templates DIR]
Needs dlib-bin, numpy and pillow; installs the missing ones with pip.
"""
import argparse
import json
import os
import shutil
import sys

# Chosen to cover the poses the renderer must handle: frontal, head turned to either side,
# a rolled head and a small face (about 90 px between the jaw ends).
CHOSEN = [
    ("Terry_Gilliam", 1, "frontal"),
    ("Tom_Brady", 1, "frontal"),
    ("Henry_Kissinger", 1, "turned to image right"),
    ("Steve_Rush", 1, "turned to image left"),
    ("Jerry_Springer", 1, "rolled about 18 degrees"),
    ("Lisa_Girman", 1, "small face"),
]


TEMPLATE_SIZE = 240
TEMPLATES = ["surgical", "surgical_left", "cloth", "cloth_left", "N95", "N95_left",
             "KN95", "KN95_left", "gas"]
# name in the resources -> file under masks/textures. The first four are the TRAIN family's
# patterns, the last four the TEST family's (see MaskFamily.swift).
TEXTURES = {
    "check_blue": "check/check_1.png", "gingham_pink": "check/check_2.jpg",
    "polka": "others/polka.jpg", "lemon": "fruits/lemon.png",
    "floral": "floral/floral_10.png", "petals_grey": "floral/grey_petals.png",
    "cherry": "fruits/cherry.png", "pineapple": "fruits/pineapple.png",
}


def ensure_packages():
    """Installs what this script needs with pip when it is missing (scripts/setup.sh installs dlib and numpy)."""
    import importlib
    import subprocess
    missing = []
    for module, package in (("dlib", "dlib-bin"), ("numpy", "numpy"), ("PIL", "pillow")):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        print("make-mask-fixtures: pip install", " ".join(missing))
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + missing)


def make_resources(masktheface, out):
    import configparser
    from PIL import Image
    cfg = configparser.ConfigParser(inline_comment_prefixes=(";",))
    cfg.read(os.path.join(masktheface, "masks", "masks.cfg"))
    os.makedirs(os.path.join(out, "templates"), exist_ok=True)
    os.makedirs(os.path.join(out, "textures"), exist_ok=True)
    index = {}
    for name in TEMPLATES:
        im = Image.open(os.path.join(masktheface, "masks", "templates", name + ".png")).convert("RGBA")
        box = im.getchannel("A").getbbox()
        im = im.crop(box)
        scale = TEMPLATE_SIZE / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        sx, sy = size[0] / im.width, size[1] / im.height
        small = im.resize(size, Image.LANCZOS).convert("LA")
        small.save(os.path.join(out, "templates", name + ".png"), optimize=True)
        anchors = {}
        for k in "abcdef":
            x, y = [float(v) for v in cfg[name]["mask_" + k].split(",")]
            anchors[k] = [round((x - box[0]) * sx, 2), round((y - box[1]) * sy, 2)]
        index[name] = {"file": "templates/%s.png" % name, "width": size[0], "height": size[1], "anchors": anchors}
    with open(os.path.join(out, "templates.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    for name, rel in TEXTURES.items():
        im = Image.open(os.path.join(masktheface, "masks", "textures", rel)).convert("RGB")
        side = min(im.size)
        im = im.crop((0, 0, side, side)).resize((128, 128), Image.LANCZOS)
        im.save(os.path.join(out, "textures", name + ".png"), optimize=True)
    shutil.copyfile(os.path.join(masktheface, "LICENSE"), os.path.join(out, "LICENSE.MaskTheFace"))
    print("wrote", len(index), "templates and", len(TEXTURES), "textures to", out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", default=os.path.join(root, "..", "shared", "datasets", "lfw_color", "lfw"))
    ap.add_argument("--models", default=os.environ.get("FACET_MODELS", os.path.join(root, "models")))
    ap.add_argument("--out", default=os.path.join(root, "Tests", "FacetMaskingTests", "Fixtures", "faces"))
    ap.add_argument("--templates", default=os.path.join(root, "..", "shared", "datasets", "mask_templates", "MaskTheFace"))
    ap.add_argument("--resources", default=os.path.join(root, "Sources", "FacetMasking", "Resources"))
    args = ap.parse_args()
    ensure_packages()
    make_resources(args.templates, args.resources)

    ensure_packages()
    import dlib
    import numpy as np
    from PIL import Image

    predictor_path = os.path.join(args.models, "shape_predictor_68_face_landmarks.dat")
    if not os.path.exists(predictor_path):
        sys.exit("make-mask-fixtures: %s not found (run scripts/setup.sh)" % predictor_path)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(predictor_path)
    os.makedirs(args.out, exist_ok=True)

    for name, index, note in CHOSEN:
        stem = "%s_%04d" % (name, index)
        src = os.path.join(args.lfw, name, stem + ".jpg")
        rgb = np.array(Image.open(src).convert("RGB"))
        faces = detector(rgb, 1)
        if len(faces) == 0:
            sys.exit("make-mask-fixtures: no face found in %s" % src)
        box = max(faces, key=lambda r: r.area())
        shape = predictor(rgb, box)
        points = [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)]
        shutil.copyfile(src, os.path.join(args.out, stem + ".jpg"))
        record = {
            "image": stem + ".jpg",
            "source": "LFW lfw/%s/%s.jpg" % (name, stem),
            "note": note,
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "box": {"left": box.left(), "top": box.top(), "right": box.right(), "bottom": box.bottom()},
            "landmarks": points,
            "producer": "dlib %s get_frontal_face_detector(upsample 1) + shape_predictor_68_face_landmarks" % dlib.__version__,
        }
        with open(os.path.join(args.out, stem + ".json"), "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        print("wrote", stem, note)


if __name__ == "__main__":
    main()
