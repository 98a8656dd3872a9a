#!/usr/bin/env python3
"""Regenerate the SVM golden files for Tests/FacetClassifyTests.

Reference solver: scikit-learn's LinearSVC, which wraps the same LIBLINEAR dual coordinate descent
(plus liblinear-weights' per-sample C). Same C, loss, tol, intercept settings as the Swift test uses.
Platt reference: scipy.optimize on Platt's objective (prior-corrected targets), an optimiser independent
of the Newton method the Swift code uses.

Usage: python3 scripts/make-svm-goldens.py        (writes Tests/FacetClassifyTests/Fixtures/svm_*.json)
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import scipy.optimize
    import sklearn
    from sklearn.svm import LinearSVC
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "numpy", "scipy", "scikit-learn"])
    import numpy as np
    import scipy.optimize
    import sklearn
    from sklearn.svm import LinearSVC

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "FacetClassifyTests", "Fixtures")
TOL = 1e-7          # stopping tolerance for both solvers, tight so that different coordinate orders agree
MAX_ITER = 100000


def make_dataset():
    rng = np.random.default_rng(20261129)
    classes = ["alice", "bob", "carol", "dave"]
    dim = 8
    centres = rng.normal(0, 1, size=(len(classes), dim))
    def draw(n_per):
        xs, ys = [], []
        for k, c in enumerate(classes):
            xs.append(centres[k] + rng.normal(0, 0.55, size=(n_per, dim)))
            ys += [c] * n_per
        return np.vstack(xs), ys
    x_train, y_train = draw(15)
    x_test, y_test = draw(5)
    x_cal, y_cal = draw(8)
    # Unknown identity for the calibration set: negatives for every class.
    x_unk = rng.normal(0, 1, size=(6, dim))
    x_cal = np.vstack([x_cal, x_unk])
    y_cal = y_cal + ["unknown"] * 6
    sw = rng.uniform(0.2, 3.0, size=len(y_train))
    r = lambda a: [[round(float(v), 6) for v in row] for row in a]
    return {
        "classes": classes,
        "dim": dim,
        "train_x": r(x_train), "train_y": y_train,
        "test_x": r(x_test), "test_y": y_test,
        "cal_x": r(x_cal), "cal_y": y_cal,
        "sample_weight": [round(float(v), 6) for v in sw],
    }


def l2n(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


CONFIGS = [
    {"name": "default", "C": 1.0, "loss": "squared_hinge", "bias": 1.0},
    {"name": "hinge_c0.1", "C": 0.1, "loss": "hinge", "bias": 1.0},
    {"name": "no_intercept_c10", "C": 10.0, "loss": "squared_hinge", "bias": None},
    {"name": "bias2_c3", "C": 3.0, "loss": "squared_hinge", "bias": 2.0},
    {"name": "class_weights", "C": 1.0, "loss": "squared_hinge", "bias": 1.0, "class_weight": {"carol": 3.0, "alice": 0.5}},
    {"name": "sample_weights", "C": 1.0, "loss": "squared_hinge", "bias": 1.0, "sample_weights": True},
    {"name": "sample_weights_hinge", "C": 0.5, "loss": "hinge", "bias": 1.0, "sample_weights": True,
     "class_weight": {"bob": 2.0}},
]


def platt_reference(dec, pos):
    dec = np.asarray(dec); pos = np.asarray(pos, dtype=bool)
    n1 = pos.sum(); n0 = len(pos) - n1
    t = np.where(pos, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    def f(p):
        z = dec * p[0] + p[1]
        # sum of -[t log(q) + (1-t) log(1-q)] with q = 1/(1+exp(z))
        return np.sum(t * z + np.logaddexp(0, -z))
    res = scipy.optimize.minimize(f, x0=[0.0, np.log((n0 + 1) / (n1 + 1))], method="BFGS",
                                  options={"gtol": 1e-10, "maxiter": 10000})
    return float(res.x[0]), float(res.x[1])


def main():
    data = make_dataset()
    xtr, xte, xcal = l2n(data["train_x"]), l2n(data["test_x"]), l2n(data["cal_x"])
    ytr = np.array(data["train_y"])
    goldens = {"sklearn_version": sklearn.__version__, "tol": TOL, "configs": []}
    for cfg in CONFIGS:
        kw = dict(C=cfg["C"], loss=cfg["loss"], dual=True, tol=TOL, max_iter=MAX_ITER, random_state=0)
        if cfg["bias"] is None:
            kw["fit_intercept"] = False
        else:
            kw["fit_intercept"] = True
            kw["intercept_scaling"] = cfg["bias"]
        if "class_weight" in cfg:
            kw["class_weight"] = cfg["class_weight"]
        clf = LinearSVC(**kw)
        sw = np.array(data["sample_weight"]) if cfg.get("sample_weights") else None
        clf.fit(xtr, ytr, sample_weight=sw)
        assert list(clf.classes_) == data["classes"]
        entry = {
            "name": cfg["name"], "C": cfg["C"], "loss": cfg["loss"], "bias": cfg["bias"],
            "class_weight": cfg.get("class_weight", {}), "sample_weights": bool(cfg.get("sample_weights")),
            "coef": clf.coef_.tolist(),
            "intercept": (clf.intercept_.tolist() if cfg["bias"] is not None else [0.0] * len(data["classes"])),
            "test_decision": clf.decision_function(xte).tolist(),
            "test_predict": clf.predict(xte).tolist(),
            "train_accuracy": float(clf.score(xtr, ytr)),
        }
        if cfg["name"] == "default":
            dcal = clf.decision_function(xcal)
            dec, pos = [], []
            for i, lab in enumerate(data["cal_y"]):
                for k, c in enumerate(data["classes"]):
                    dec.append(float(dcal[i, k])); pos.append(lab == c)
            a, b = platt_reference(dec, pos)
            entry["platt"] = {"a": a, "b": b}
        goldens["configs"].append(entry)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "svm_dataset.json"), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "svm_goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")
    print("wrote", OUT, "sklearn", sklearn.__version__)


if __name__ == "__main__":
    main()
