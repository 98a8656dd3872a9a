#!/usr/bin/env python3
"""Regenerate Tests/FacetEvalTests/Fixtures/metric_goldens.json: verification and identification metrics from
reference implementations, on seeded data with many ties.

- ROC curve: sklearn.metrics.roc_curve(drop_intermediate=False) (one point per distinct score, ties grouped).
- AUC: sklearn.metrics.roc_auc_score.
- EER: scipy.optimize.brentq on the linearly interpolated ROC, as facenet's LFW evaluation computes it.
- Closed-set identification: sklearn accuracy_score and precision_recall_fscore_support(average="macro",
  zero_division=0) over the union of true and predicted labels.

Usage: python3 scripts/make-eval-goldens.py
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import scipy
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    import sklearn
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score, roc_curve
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "numpy", "scipy", "scikit-learn"])
    import numpy as np
    import scipy
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    import sklearn
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score, roc_curve

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "FacetEvalTests", "Fixtures",
                   "metric_goldens.json")


def main():
    rng = np.random.default_rng(5)
    # Verification: 400 genuine ~ N(0.6, 0.15), 1600 impostor ~ N(0.2, 0.15), rounded to 0.01 so ties abound.
    gen = np.round(rng.normal(0.6, 0.15, 400), 2)
    imp = np.round(rng.normal(0.2, 0.15, 1600), 2)
    scores = np.concatenate([gen, imp])
    same = np.concatenate([np.ones(400, bool), np.zeros(1600, bool)])
    perm = rng.permutation(len(scores))
    scores, same = scores[perm], same[perm]
    fpr, tpr, thr = roc_curve(same, scores, drop_intermediate=False)
    auc = roc_auc_score(same, scores)
    eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-14)
    tar_at = {}
    for far in [0.001, 0.01, 0.05, 0.1]:
        ok = fpr <= far + 1e-15
        tar_at[str(far)] = float(tpr[ok].max())

    # Identification: 8 true classes, predictions partly wrong, including 2 labels never true.
    classes = [f"id{k}" for k in range(8)]
    truth = rng.choice(classes, 200)
    pred = truth.copy()
    wrong = rng.random(200) < 0.35
    pred[wrong] = rng.choice(classes + ["intruder1", "intruder2"], wrong.sum())
    labels = sorted(set(truth) | set(pred))
    p, r, f, _ = precision_recall_fscore_support(truth, pred, labels=labels, average="macro", zero_division=0)

    out = {
        "versions": {"sklearn": sklearn.__version__, "scipy": scipy.__version__, "numpy": np.__version__},
        "verification": {
            "scores": [float(s) for s in scores],
            "is_same": [bool(b) for b in same],
            "roc_fpr": fpr.tolist(), "roc_tpr": tpr.tolist(),
            "roc_thresholds": [float(t) for t in thr[1:]],   # thr[0] is +inf (nothing accepted)
            "auc": float(auc), "eer": float(eer), "tar_at_far": tar_at,
        },
        "identification": {
            "truth": truth.tolist(), "predicted": pred.tolist(),
            "accuracy": float(accuracy_score(truth, pred)),
            "macro_precision": float(p), "macro_recall": float(r), "macro_f1": float(f),
        },
    }
    with open(OUT, "w") as fh:
        json.dump(out, fh)
        fh.write("\n")
    print("wrote", OUT, "points", len(fpr), "auc", auc, "eer", eer)


if __name__ == "__main__":
    main()
