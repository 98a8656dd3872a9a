#!/usr/bin/env python3
"""Does the face ResNet's last residual block (256 channels x 2x2 positions, before the average that makes the
embedding) hold more about a masked face than its 128-D embedding? (session 12, docs/masks.md "Session 12")
Masked-unmasked View 2 pairs, first image unmasked (dlib's embedding of the standard chip), second TEST-masked and
re-cut from its eyes (nose height 0.52); 10-fold accuracy with the threshold from the other nine folds, alone and
fused 0.5/0.5 with the cached periocular embeddings. Linear students (ridge regression, per group of folds: trained
on TRAIN-masked copies of the images of people with no fold in the group, mapped onto the unmasked embedding of the
same image) from the 128-D embedding, from the 1,024 activations, from both; and the upper two positions through
dlib's fc layer (fitted exactly by least squares), untrained.
Inputs (hidden `facet activations`, seconds per set):
  facet activations --json CACHE/unmasked.jsonl --root LFW --out DIR/unmasked.S --shard S --shards 2
  facet activations --json CACHE/masked-test.jsonl --root CACHE/masked-test --recut 0.52 --out DIR/test.S ...
  facet activations --json CACHE/masked-train-y0.52.jsonl --root CACHE/masked-train --recut 0.52 --out DIR/train.S ...
With `facet activations --block 12` (256 x 4x4, the last block's input) the files are wider; the width is read from
them, and the untrained upper-positions check (block 13 only) is left out.
KERNEL=1 adds kernel ridge students (non-linear).
Usage: scripts/masks/spatial-check.py DIR CACHE PAIRS [RIDGE_LAMBDA ...]   (FEATS=act limits the students)"""
import numpy as np, sys, os
from view2 import read_pairs, key, person_folds, read_periocular
DIR, CACHE, PAIRS = sys.argv[1:4]
D = os.path.getsize(f"{DIR}/unmasked.0.f32") // 4 // sum(1 for l in open(f"{DIR}/unmasked.0.txt") if l.strip())
A_DIM = D - 128
def load(name):
    X=[];K=[]
    for s in (0,1):
        a=np.fromfile(f"{DIR}/{name}.{s}.f32",dtype="<f4").reshape(-1,D)
        k=[l[2:] if l.startswith("./") else l for l in open(f"{DIR}/{name}.{s}.txt").read().split("\n") if l]
        X.append(a);K+=k
    X=np.concatenate(X); return {k:X[i] for i,k in enumerate(K)}
U=load("unmasked"); T=load("test"); R=load("train")
print(len(U),len(T),len(R))
# fc fit
keys=list(U)[:3000]
if A_DIM == 1024:
    A=np.stack([U[k][:1024].reshape(256,4).mean(1) for k in keys]); Y=np.stack([U[k][A_DIM:] for k in keys])
    W0,res,_,_=np.linalg.lstsq(A,Y,rcond=None)
    print("fc fit max err",np.abs(A@W0-Y).max())
def n(x): return x/np.linalg.norm(x,axis=-1,keepdims=True)
pairs, _, _ = read_pairs(PAIRS)
pf = person_folds(pairs)
group=lambda f:f%2
PU=read_periocular(CACHE,"unmasked"); PT=read_periocular(CACHE,"masked-test")   # masked: the re-aligned ones (last line)
def person(k): return k.split("/")[0]
# training sets per group: masked-train images of people with no fold in group g
def trainset(g, feat):
    Xs=[];Ys=[]
    for k,v in R.items():
        if k not in U: continue
        fs=pf.get(person(k),set())
        if any(group(f)==g for f in fs): continue
        Xs.append(feat(v)); Ys.append(n(U[k][A_DIM:]))
    return np.stack(Xs),np.stack(Ys)
def ridge(X,Y,lam):
    X1=np.hstack([X,np.ones((len(X),1))])
    return np.linalg.solve(X1.T@X1+lam*np.eye(X1.shape[1]),X1.T@Y)
def applyW(W,X): return np.hstack([X,np.ones((len(X),1))])@W
feats={"act":lambda v:v[:A_DIM],"desc":lambda v:n(v[A_DIM:]),"act+desc":lambda v:np.concatenate([v[:A_DIM],n(v[A_DIM:])])}
def evaluate(probe, label, fuse=False):
    # probe: dict key-> unit embedding for masked images (second of MU pair); reference = unmasked desc
    d=[];y=[];f=[]
    for p in pairs:
        a,b=key(p[0],p[1]),key(p[2],p[3])
        if a not in U or b not in probe: continue
        dist=np.linalg.norm(n(U[a][A_DIM:])-probe[b])
        if fuse: dist=0.5*dist+0.5*np.linalg.norm(n(PU[a])-n(PT[b]))
        d.append(dist);y.append(p[4]);f.append(p[5])
    d=np.array(d);y=np.array(y);f=np.array(f)
    accs=[]
    for k in range(10):
        tr=f!=k; best=(0,0)
        for t in np.unique(d[tr]):
            acc=np.mean((d[tr]<=t)==y[tr])
            if acc>best[0]: best=(acc,t)
        accs.append(np.mean((d[f==k]<=best[1])==y[f==k]))
    print(f"{label:40s} n={len(d)} acc {100*np.mean(accs):.2f}%",flush=True)
base={k:n(v[A_DIM:]) for k,v in T.items()}
evaluate(base,"frozen re-cut"); evaluate(base,"frozen re-cut + peri",True)
upper={k:n(v[:A_DIM].reshape(256,4)[:,:2].mean(1)@W0) for k,v in T.items()} if A_DIM == 1024 else None
Uup=None
for lam in [float(x) for x in sys.argv[4:]] or [1.0, 10.0, 100.0, 1000.0]:
    for fname in os.environ.get("FEATS","desc,act,act+desc").split(","):
        probe={}
        for g in (0,1):
            X,Y=trainset(g,feats[fname]); W=ridge(X,Y,lam)
            ks=[k for k in T if all(group(ff)==g for ff in pf.get(person(k),set()))]
            P=n(applyW(W,np.stack([feats[fname](T[k]) for k in ks])))
            for k,v in zip(ks,P): probe[k]=v
        evaluate(probe,f"ridge {fname} lam={lam}"); evaluate(probe,f"ridge {fname} lam={lam} + peri",True)
if upper: evaluate(upper,"upper positions (zero training)"); evaluate(upper,"upper + peri",True)
# KERNEL=1: kernel ridge students (RBF on standardised features, bandwidth = the median squared distance / g): non-linear
# maps from the same inputs, closed form, per group of folds as above.
def kernel_student(fname, lam, g):
    probe={}
    for grp in (0,1):
        X,Y=trainset(grp,feats[fname])
        mu=X.mean(0); sd=X.std(0)+1e-6; Xs=(X-mu)/sd; sq=(Xs**2).sum(1)
        D2=sq[:,None]+sq[None,:]-2*Xs@Xs.T; gamma=g/np.median(D2)
        alpha=np.linalg.solve(np.exp(-gamma*D2)+lam*np.eye(len(X)),Y)
        ks=[k for k in T if all(group(ff)==grp for ff in pf.get(person(k),set()))]
        Z=(np.stack([feats[fname](T[k]) for k in ks])-mu)/sd
        P=n(np.exp(-gamma*((Z**2).sum(1)[:,None]+sq[None,:]-2*Z@Xs.T))@alpha)
        for k,v in zip(ks,P): probe[k]=v
    evaluate(probe,f"kernel {fname} lam={lam} g={g}"); evaluate(probe,f"kernel {fname} lam={lam} g={g} + peri",True)
if os.environ.get("KERNEL") == "1":
    for fname in os.environ.get("FEATS","desc,act").split(","):
        for lam in (0.1, 1.0):
            for g in (0.5, 1.0): kernel_student(fname, lam, g)
