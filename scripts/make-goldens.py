#!/usr/bin/env python3
"""Regenerates Facet's committed decoder fixtures and dlib face-pipeline goldens.

    python3 scripts/make-goldens.py [--imaging] [--faces] [--datasets DIR]

--imaging  Tests/FacetImagingTests/Fixtures: small JPEG/PNG files (EXIF orientations 1-8, grayscale, alpha,
           palette, progressive, CMYK, GIF/BMP, truncated, corrupt, header bombs) and imaging.json, which records
           for each decodable file the size and an FNV-1a 64 hash of the RGB pixels Pillow produces with
           ImageOps.exif_transpose(img).convert("RGB") -- the exact input the face goldens feed dlib.
--faces    Tests/FacetFaceTests/Fixtures/images + goldens/*.json (see make_faces below).
Default: both. Needs: pip install dlib-bin face-recognition-models numpy pillow (installed if missing).
Sources are read from --datasets (default /work/shared/datasets); the outputs are committed, so tests never need them.
"""
import argparse, hashlib, io, json, os, shutil, struct, subprocess, sys, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_packages():
    need = []
    for mod, pkg in (("dlib", "dlib-bin"), ("face_recognition_models", "face-recognition-models"),
                     ("numpy", "numpy"), ("PIL", "pillow")):
        try:
            __import__(mod)
        except ImportError:
            need.append(pkg)
    if need:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + need)


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def pil_rgb(path):
    """What Facet's decoder must produce: Pillow + exif_transpose + convert('RGB')."""
    from PIL import Image, ImageOps
    im = Image.open(path)
    im.load()
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


# ----------------------------------------------------------------------------------------------------------------
# Imaging fixtures
# ----------------------------------------------------------------------------------------------------------------

def make_imaging(datasets):
    from PIL import Image
    out = os.path.join(ROOT, "Tests/FacetImagingTests/Fixtures")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    src = Image.open(os.path.join(datasets, "lfw_color_samples/Anthony_Hopkins_0001.jpg")).convert("RGB")
    small = src.crop((70, 60, 70 + 48, 60 + 36))          # asymmetric 48x36 so every orientation differs
    manifest = {}

    def record(name, note):
        im = pil_rgb(os.path.join(out, name))
        manifest[name] = {"width": im.width, "height": im.height, "fnv1a64": fnv1a64(im.tobytes()), "note": note}

    shutil.copyfile(os.path.join(datasets, "lfw_color_samples/Anthony_Hopkins_0001.jpg"), os.path.join(out, "lfw.jpg"))
    record("lfw.jpg", "original LFW colour JPEG (250x250)")
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        name = "orientation-%d.jpg" % o
        small.save(os.path.join(out, name), quality=92, exif=exif.tobytes())
        record(name, "EXIF orientation %d" % o)
    small.convert("L").save(os.path.join(out, "gray.jpg"), quality=90)
    record("gray.jpg", "grayscale JPEG")
    small.save(os.path.join(out, "progressive.jpg"), quality=85, progressive=True)
    record("progressive.jpg", "progressive JPEG")
    small.save(os.path.join(out, "subsampled-420.jpg"), quality=75, subsampling=2)
    record("subsampled-420.jpg", "4:2:0 JPEG")
    small.save(os.path.join(out, "rgb.png"))
    record("rgb.png", "RGB PNG")
    small.convert("L").save(os.path.join(out, "gray.png"))
    record("gray.png", "grayscale PNG")
    rgba = small.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(small.size))
    rgba.save(os.path.join(out, "alpha.png"))
    record("alpha.png", "RGBA PNG (alpha dropped, as Pillow convert('RGB'))")
    la = small.convert("L")
    la.putalpha(Image.linear_gradient("L").resize(small.size))
    la.save(os.path.join(out, "gray-alpha.png"))
    record("gray-alpha.png", "LA PNG")
    pal = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(os.path.join(out, "palette.png"), transparency=0)
    record("palette.png", "palette PNG with tRNS")
    # A JPEG under a .png name and a PNG under a .jpg name: the format comes from the magic bytes.
    small.save(os.path.join(out, "jpeg-named.png"), format="JPEG", quality=90)
    record("jpeg-named.png", "JPEG bytes with a .png extension")
    small.save(os.path.join(out, "png-named.jpg"), format="PNG")
    record("png-named.jpg", "PNG bytes with a .jpg extension")

    # Files that must fail, with the code Facet must report.
    failures = {}
    small.convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=90)
    failures["cmyk.jpg"] = "unsupportedFormat"
    small.save(os.path.join(out, "image.gif"))
    failures["image.gif"] = "unsupportedFormat"
    small.save(os.path.join(out, "image.bmp"))
    failures["image.bmp"] = "unsupportedFormat"
    with open(os.path.join(out, "text-named.jpg"), "w") as f:
        f.write("this is not an image\n")
    failures["text-named.jpg"] = "unsupportedFormat"
    open(os.path.join(out, "empty.jpg"), "wb").close()
    failures["empty.jpg"] = "empty"
    jpg = open(os.path.join(out, "lfw.jpg"), "rb").read()
    open(os.path.join(out, "truncated.jpg"), "wb").write(jpg[: len(jpg) // 2])
    failures["truncated.jpg"] = "truncated"
    pngb = open(os.path.join(out, "rgb.png"), "rb").read()
    open(os.path.join(out, "truncated.png"), "wb").write(pngb[: len(pngb) * 2 // 3])
    failures["truncated.png"] = "truncated"
    # Corrupt JPEG: the first DQT names table 7 (libjpeg: "Bogus DQT index 7").
    i = jpg.index(b"\xff\xdb")
    bad = bytearray(jpg)
    bad[i + 4] = (bad[i + 4] & 0xF0) | 0x07
    open(os.path.join(out, "corrupt.jpg"), "wb").write(bytes(bad))
    failures["corrupt.jpg"] = "corrupt"
    # Corrupt PNG: one flipped byte inside IDAT (CRC mismatch).
    j = pngb.index(b"IDAT") + 10
    bad = bytearray(pngb)
    bad[j] ^= 0xFF
    open(os.path.join(out, "corrupt.png"), "wb").write(bytes(bad))
    failures["corrupt.png"] = "corrupt"
    # Decompression bombs: tiny files whose headers claim huge images.
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    idat = zlib.compress(b"\x00" * 3001 * 8)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    open(os.path.join(out, "bomb-100000x100000.png"), "wb").write(bomb)
    failures["bomb-100000x100000.png"] = "tooLarge"
    k = jpg.index(b"\xff\xc0")                       # SOF0: FF C0 len(2) precision(1) height(2) width(2)
    bad = bytearray(jpg)
    bad[k + 5:k + 9] = struct.pack(">HH", 65500, 65500)
    sos = jpg.index(b"\xff\xda")                    # keep every header segment up to and including SOS
    open(os.path.join(out, "bomb-65500x65500.jpg"), "wb").write(bytes(bad[: sos + 200]) + b"\xff\xd9")
    failures["bomb-65500x65500.jpg"] = "tooLarge"

    # dlib's own resampling, for PyramidDown2 and BilinearSampling: pyramid_down<2> applied three times to the
    # LFW image, and transform_image (bilinear) through a rotation+scale+shift affine map.
    import dlib, numpy as np, math
    img = np.asarray(pil_rgb(os.path.join(out, "lfw.jpg")))
    pyr, levels, cur = dlib.pyramid_down(2), [], img
    for _ in range(3):
        cur = np.ascontiguousarray(pyr(cur))
        levels.append({"width": int(cur.shape[1]), "height": int(cur.shape[0]), "fnv1a64": fnv1a64(cur.tobytes())})
    a, sc = 0.3, 1.7
    m = [[sc * math.cos(a), -sc * math.sin(a), 60.25], [sc * math.sin(a), sc * math.cos(a), -10.5], [0.0, 0.0, 1.0]]
    warped = dlib.transform_image(img, dlib.point_transform_projective(np.array(m)), 90, 100)
    warped = np.ascontiguousarray(warped)
    resampling = {
        "input": "lfw.jpg",
        "pyramid_down_2": levels,
        "bilinear": {"m": m[:2], "rows": 90, "columns": 100, "fnv1a64": fnv1a64(warped.tobytes()),
                     "pixel_sum": int(warped.astype(np.int64).sum())},
    }

    with open(os.path.join(out, "imaging.json"), "w") as f:
        json.dump({"decodable": manifest, "failing": failures, "resampling": resampling}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("imaging fixtures: %d decodable, %d failing -> %s" % (len(manifest), len(failures), out))


# ----------------------------------------------------------------------------------------------------------------
# Face-pipeline goldens
# ----------------------------------------------------------------------------------------------------------------

LFW_PEOPLE = ["Aaron_Eckhart_0001", "Angelina_Jolie_0001", "Arnold_Schwarzenegger_0001", "Colin_Powell_0001",
              "George_W_Bush_0001", "Hugo_Chavez_0001", "Jennifer_Aniston_0001", "Serena_Williams_0001",
              "Tony_Blair_0001", "Venus_Williams_0001", "Vladimir_Putin_0001", "Gloria_Macapagal_Arroyo_0001",
              "Junichiro_Koizumi_0001", "Halle_Berry_0001", "Jackie_Chan_0001"]
FR = "face_fixtures/face_recognition"
MAX_FIXTURE_BYTES = 300 * 1024


def save_jpeg_under_limit(im, path, quality=92, exif=None):
    while True:
        kw = {"quality": quality}
        if exif is not None:
            kw["exif"] = exif
        im.save(path, **kw)
        if os.path.getsize(path) < MAX_FIXTURE_BYTES or quality <= 40:
            return
        quality -= 6


def build_face_fixtures(datasets, out, sp68):
    """Writes the fixture images; returns [(file, upsample, note)]. Recipes are deterministic."""
    from PIL import Image, ImageDraw
    import dlib, numpy as np
    lfw = lambda n: os.path.join(datasets, "lfw_color/lfw", n.rsplit("_", 1)[0], n + ".jpg")
    fr = lambda p: os.path.join(datasets, FR, p)
    items = []

    def copy(src, name, up, note):
        shutil.copyfile(src, os.path.join(out, name))
        items.append((name, up, note))

    def resized(src, name, width, up, note, exif=None):
        im = Image.open(src).convert("RGB")
        h = round(im.height * width / im.width)
        save_jpeg_under_limit(im.resize((width, h), Image.LANCZOS), os.path.join(out, name), exif=exif)
        items.append((name, up, note))

    for n in LFW_PEOPLE:
        copy(lfw(n), "lfw-" + n + ".jpg", 0, "LFW original colour JPEG (250x250)")
    for n in ("Anthony_Hopkins_0001", "Anthony_Hopkins_0002"):
        copy(os.path.join(datasets, "lfw_color_samples", n + ".jpg"), "lfw-sample-" + n + ".jpg", 0,
             "colour LFW sample (lfw_color_samples)")
    # Grayscale JPEG.
    Image.open(lfw("George_W_Bush_0002")).convert("L").save(os.path.join(out, "lfw-gray.jpg"), quality=92)
    items.append(("lfw-gray.jpg", 0, "grayscale JPEG (LFW George_W_Bush_0002)"))
    # Rotated face (in-plane 25 degrees).
    Image.open(lfw("Tony_Blair_0002")).rotate(25, resample=Image.BICUBIC).save(
        os.path.join(out, "lfw-rotated-25.jpg"), quality=92)
    items.append(("lfw-rotated-25.jpg", 0, "face rotated 25 degrees in plane (LFW Tony_Blair_0002)"))
    # Masked face: a surgical-mask-like polygon over nose and mouth from dlib's 68 landmarks.
    im = Image.open(lfw("Colin_Powell_0002")).convert("RGB")
    arr = np.asarray(im)
    det = dlib.get_frontal_face_detector()(arr, 1)[0]
    pts = sp68(arr, det)
    poly = [(pts.part(i).x, pts.part(i).y) for i in list(range(2, 15))] + [(pts.part(28).x, pts.part(28).y)]
    ImageDraw.Draw(im).polygon(poly, fill=(90, 150, 200))
    im.save(os.path.join(out, "lfw-masked.jpg"), quality=92)
    items.append(("lfw-masked.jpg", 0, "LFW Colin_Powell_0002 with a drawn mask up to the nose bridge: dlib finds no face"))
    im = Image.open(lfw("George_W_Bush_0003")).convert("RGB")
    arr = np.asarray(im)
    pts = sp68(arr, dlib.get_frontal_face_detector()(arr, 1)[0])
    poly = [(pts.part(i).x, pts.part(i).y) for i in list(range(2, 15))] + [(pts.part(28).x, pts.part(28).y)]
    ImageDraw.Draw(im).polygon(poly, fill=(235, 235, 240))
    im.save(os.path.join(out, "lfw-masked-detected.jpg"), quality=92)
    items.append(("lfw-masked-detected.jpg", 0, "LFW George_W_Bush_0003 with a drawn white mask: dlib still finds the face"))
    # EXIF-rotated: pixels stored rotated, EXIF orientation 6 says "rotate 90 clockwise to display".
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(lfw("Laura_Bush_0001")).transpose(Image.ROTATE_90).save(
        os.path.join(out, "lfw-exif-orientation-6.jpg"), quality=92, exif=exif.tobytes())
    items.append(("lfw-exif-orientation-6.jpg", 0, "stored rotated with EXIF orientation 6 (LFW Laura_Bush_0001)"))

    resized(fr("examples/two_people.jpg"), "two-people.jpg", 800, 0, "two faces (face_recognition two_people.jpg)")
    resized(fr("examples/knn_examples/test/obama_and_biden.jpg"), "obama-and-biden.jpg", 1000, 0,
            "several faces (face_recognition obama_and_biden.jpg)")
    resized(fr("examples/knn_examples/test/kit_with_rose.jpg"), "kit-with-rose.jpg", 501, 0, "two faces")
    resized(fr("examples/knn_examples/test/johnsnow_test1.jpg"), "johnsnow.jpg", 500, 0, "one face")
    resized(fr("examples/biden.jpg"), "biden.jpg", 400, 0, "tall portrait")
    resized(fr("examples/knn_examples/train/rose_leslie/img1.jpg"), "rose-leslie.jpg", 640, 0, "one face")
    resized(fr("examples/knn_examples/train/kit_harington/john1.jpeg"), "kit-harington.jpg", 700, 0, "one face")
    resized(fr("tests/test_images/obama_partial_face.jpg"), "obama-partial-face.jpg", 300, 0, "face cut by the border")
    copy(fr("examples/obama-240p.jpg"), "obama-240p.jpg", 1, "small image, upsample 1")
    copy(fr("examples/obama_small.jpg"), "obama-small.jpg", 1, "small image, upsample 1")
    # Large photo (>= 1500 px on a side), re-encoded to stay under the fixture size limit.
    im = Image.open(fr("examples/knn_examples/test/alex_lacamoire1.jpg")).convert("RGB")
    save_jpeg_under_limit(im, os.path.join(out, "large-alex-lacamoire.jpg"), quality=80)
    items.append(("large-alex-lacamoire.jpg", 0, "large photo 1548x1024"))
    # PNG with alpha (RGBA): the dataset's own RGBA PNG, and a downscaled 32-bit PNG.
    copy(fr("examples/alex-lacamoire.png"), "alex-lacamoire-rgba.png", 0, "RGBA PNG (alpha dropped as Pillow does)")
    im = Image.open(fr("tests/test_images/32bit.png"))
    im.resize((260, round(im.height * 260 / im.width)), Image.LANCZOS).save(os.path.join(out, "obama-32bit-rgba.png"))
    items.append(("obama-32bit-rgba.png", 0, "32-bit RGBA PNG, downscaled"))
    # No face: suits and arms from two_people.jpg.
    im = Image.open(fr("examples/two_people.jpg")).convert("RGB").crop((600, 400, 1126, 661))
    im.save(os.path.join(out, "no-face.jpg"), quality=90)
    items.append(("no-face.jpg", 0, "no face (crop of two_people.jpg below the faces)"))
    for name, _, _ in items:
        size = os.path.getsize(os.path.join(out, name))
        assert size < MAX_FIXTURE_BYTES, (name, size)
    return items


def landmarks68(sp68, img, rect):
    shape = sp68(img, rect)
    return [[shape.part(i).x, shape.part(i).y] for i in range(68)]


def add_landmarks68(models):
    """Adds/refreshes 68-point landmarks (shape_predictor_68_face_landmarks on the golden MMOD box) in the
    existing goldens without re-running the slow detector."""
    import dlib, glob, numpy as np
    sp68 = dlib.shape_predictor(os.path.join(models, "shape_predictor_68_face_landmarks.dat"))
    base = os.path.join(ROOT, "Tests/FacetFaceTests/Fixtures")
    for path in sorted(glob.glob(os.path.join(base, "goldens/*.json"))):
        g = json.load(open(path))
        img = np.asarray(pil_rgb(os.path.join(base, "images", g["image"])))
        for face in g["faces"]:
            face["landmarks68"] = landmarks68(sp68, img, dlib.rectangle(*face["box"]))
        with open(path, "w") as f:
            json.dump(g, f, indent=1)
            f.write("\n")


def make_faces(datasets, models):
    """Tests/FacetFaceTests/Fixtures/images/*: the fixture photos. goldens/<image>.json: dlib's results on the
    exact RGB array Facet's decoder produces (Pillow + exif_transpose + convert("RGB")):
      - MMOD (cnn_face_detection_model_v1) boxes and confidences at the recorded upsample;
      - 5-point landmarks of each box (shape_predictor_5_face_landmarks);
      - get_face_chip_details(shape, 150, 0.25) and the chip (get_face_chip, stored as PNG in goldens/chips/);
      - the 128-D descriptor from the image+shape (compute_face_descriptor(img, shape)), and from the stored chip
        alone (compute_face_descriptor(chip)), and on the first image also with num_jitters=3.
    Descriptors are dlib's raw output (not re-normalised)."""
    import dlib, numpy as np
    from PIL import Image
    base = os.path.join(ROOT, "Tests/FacetFaceTests/Fixtures")
    out = os.path.join(base, "images")
    gold = os.path.join(base, "goldens")
    chips = os.path.join(gold, "chips")
    for d in (out, gold, chips):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if os.path.isfile(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
    cnn = dlib.cnn_face_detection_model_v1(os.path.join(models, "mmod_human_face_detector.dat"))
    sp5 = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
    sp68 = dlib.shape_predictor(os.path.join(models, "shape_predictor_68_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))
    items = build_face_fixtures(datasets, out, sp68)
    total_faces = 0
    for idx, (name, up, note) in enumerate(items):
        im = pil_rgb(os.path.join(out, name))
        img = np.asarray(im)
        dets = cnn(img, up)
        faces = []
        for k, d in enumerate(dets):
            r = d.rect
            shape = sp5(img, r)
            lm = [[shape.part(i).x, shape.part(i).y] for i in range(5)]
            cd = dlib.get_face_chip_details(shape, 150, 0.25)
            chip = dlib.get_face_chip(img, shape, 150, 0.25)
            chip_name = "%s-%d.png" % (os.path.splitext(name)[0], k)
            Image.fromarray(chip).save(os.path.join(chips, chip_name))
            desc = list(rec.compute_face_descriptor(img, shape))
            desc_chip = list(rec.compute_face_descriptor(chip))
            face = {
                "box": [r.left(), r.top(), r.right(), r.bottom()],
                "confidence": d.confidence,
                "landmarks": lm,
                "chip": chip_name,
                "chip_fnv1a64": fnv1a64(np.ascontiguousarray(chip).tobytes()),
                "chip_details": {"rect": [cd.rect.left(), cd.rect.top(), cd.rect.right(), cd.rect.bottom()],
                                 "angle": cd.angle, "rows": cd.rows, "cols": cd.cols},
                "descriptor": desc,
                "descriptor_from_chip": desc_chip,
                "descriptor_norm": float(np.linalg.norm(desc)),
            }
            face["landmarks68"] = landmarks68(sp68, img, r)
            if idx == 0 and k == 0:
                face["descriptor_jitter_3"] = list(rec.compute_face_descriptor(img, shape, 3))
            faces.append(face)
        total_faces += len(faces)
        g = {"image": name, "note": note, "width": im.width, "height": im.height,
             "decoded_fnv1a64": fnv1a64(img.tobytes()), "upsample": up, "dlib_version": dlib.__version__,
             "faces": faces}
        with open(os.path.join(gold, os.path.splitext(name)[0] + ".json"), "w") as f:
            json.dump(g, f, indent=1)
            f.write("\n")
        print("%-40s %4dx%-4d up=%d faces=%d" % (name, im.width, im.height, up, len(faces)), flush=True)
    print("face goldens: %d images, %d faces -> %s" % (len(items), total_faces, gold))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imaging", action="store_true")
    ap.add_argument("--faces", action="store_true")
    ap.add_argument("--landmarks68", action="store_true", help="only refresh 68-point landmarks in the face goldens")
    ap.add_argument("--datasets", default=os.environ.get("FACET_DATASETS", "/work/shared/datasets"))
    ap.add_argument("--models", default=os.environ.get("FACET_MODELS", os.path.join(ROOT, "models")))
    args = ap.parse_args()
    both = not args.imaging and not args.faces and not args.landmarks68
    ensure_packages()
    if args.landmarks68:
        add_landmarks68(args.models)
    if args.imaging or both:
        make_imaging(args.datasets)
    if args.faces or both:
        make_faces(args.datasets, args.models)


if __name__ == "__main__":
    main()
