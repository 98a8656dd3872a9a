"""Shared by the numpy checks on `facet eval lfw` caches (fold-heads-check.py and the scripts that exec its first half,
spatial-check.py): LFW View 2 pairs, image keys, people's folds, and the cached periocular embeddings."""
import json
import numpy as np

def read_pairs(path):
    """(pairs, folds, pairs per half-fold): each pair (name1, i1, name2, i2, genuine, fold) of an LFW pairs file."""
    lines = open(path).read().split("\n")
    nfold, per = map(int, lines[0].split())
    pairs = []
    for i, l in enumerate(x for x in lines[1:] if x.strip()):
        a = l.split(); fold = i // (2 * per)
        if len(a) == 3: pairs.append((a[0], int(a[1]), a[0], int(a[2]), True, fold))
        else: pairs.append((a[0], int(a[1]), a[2], int(a[3]), False, fold))
    return pairs, nfold, per

def key(name, i): return f"{name}/{name}_{i:04d}.jpg"

def person_folds(pairs):
    """Person -> the View 2 folds their pairs are in."""
    out = {}
    for n1, i1, n2, i2, s, f in pairs: out.setdefault(n1, set()).add(f); out.setdefault(n2, set()).add(f)
    return out

def read_periocular(cache, name):
    """Periocular embeddings (`facet eval lfw --periocular` cache lines of CACHE/NAME.eval.jsonl) by image key; the last
    line of an image wins (with --masked-nose-y, the re-aligned one of a face called masked)."""
    out = {}
    try: lines = open(f"{cache}/{name}.eval.jsonl")
    except OSError: return out
    for l in lines:
        if '"periocular"' in l:
            o = json.loads(l); out[o["image"][2:]] = np.array(o["periocular"])
    return out
