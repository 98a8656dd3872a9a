"""Shared by nose-sweep.py and masked-landmarks-check.py: dlib's 5-point template, the similarity fit, the dlib models
(pip dlib-bin + face-recognition-models files in MODELS_DIR) and the central MMOD face of an LFW image."""
import numpy as np, dlib

# dlib's get_face_chip_details template for shape_predictor_5_face_landmarks (unit square), as FaceChip.swift.
T = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677), (0.1205750620789, 0.2137274526848),
              (0.3340850613712, 0.2290642403242), (0.4901123135679, 0.6277975316475)])
# dlib HOG's median LFW box: the fallback when MMOD finds no face (as facet mask-dataset --centred).
FALLBACK = dlib.rectangle(77, 79, 181, 181)

def sim(src, dst):
    """Least-squares similarity transform src -> dst (n x 2 arrays), as a function of points."""
    ms, md = src.mean(0), dst.mean(0); s = src - ms; d = dst - md
    a = (s * d).sum(); b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum(); n = (s ** 2).sum()
    A = np.array([[a / n, -b / n], [b / n, a / n]])
    return lambda p: (np.asarray(p) - ms) @ A.T + md

def models(directory):
    m = directory.rstrip('/') + '/'
    return (dlib.cnn_face_detection_model_v1(m + 'mmod_human_face_detector.dat'),
            dlib.shape_predictor(m + 'shape_predictor_5_face_landmarks.dat'),
            dlib.face_recognition_model_v1(m + 'dlib_face_recognition_resnet_model_v1.dat'))

def central(detections):
    """The MMOD detection nearest the centre of a 250 x 250 LFW image, else the fallback box."""
    if not detections: return FALLBACK
    return min(detections, key=lambda d: (d.rect.center().x - 125) ** 2 + (d.rect.center().y - 125) ** 2).rect

def normalised(v):
    v = np.array(v); return v / np.linalg.norm(v, axis=1, keepdims=True)
