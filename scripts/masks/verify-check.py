#!/usr/bin/env python3
"""What the cluster's verify of two images decides on LFW View 2 with TEST-family masks, from the bundled files only
(mask detector v4 at its threshold, embeddings averaged with their mirror image's, unmasking-head-v1 on faces called
masked, comparison-thresholds-v3, and periocular-fusion-v2's thresholds for fused comparisons; all calibrated on
people outside pairs.txt): FMR over every
cross-identity pair within each fold and FNMR over the 3,000 genuine pairs, without and with periocular fusion.
Reads a `facet eval lfw --periocular` cache (embeddings, mask probabilities, periocular and mirror-averaged
embeddings); numpy, ~1 min.
Usage: scripts/masks/verify-check.py CACHE_DIR PAIRS [DIR]
  DIR: candidate files to check instead of the bundled ones (those it holds of unmasking-head-v1.json,
  comparison-thresholds-v3.json, periocular-fusion-v2.json; e.g. a facet mask-train --out-dir)"""
import os, sys, json, numpy as np
here = os.path.dirname(os.path.abspath(__file__))
R = os.path.join(here, "..", "..", "Sources", "FacetMasking", "Resources") + "/"
CAND = sys.argv[3] if len(sys.argv) > 3 else None
def pick(name): return f"{CAND}/{name}" if CAND and os.path.exists(f"{CAND}/{name}") else R + name
for n in ("unmasking-head-v1.json", "comparison-thresholds-v3.json", "periocular-fusion-v2.json"): print("using", pick(n), flush=True)
sys.argv = [sys.argv[0], sys.argv[1], sys.argv[2], pick("unmasking-head-v1.json")]
exec(open(os.path.join(here, "fold-heads-check.py")).read().split('for name, fm, sm in')[0])
det=json.load(open(R+"mask-detector-v4.json")); THR=det["threshold"]
ct=json.load(open(pick("comparison-thresholds-v3.json")))["maxDistance"]
fu=json.load(open(pick("periocular-fusion-v2.json"))); ft=fu["thresholds"]["maxDistance"]; w=fu["fullWeight"]
PU = read_periocular("unmasked"); PM = read_periocular("masked-test")
def read_mirror(name):
    out = {}
    for l in open(f"{cache}/{name}.eval.jsonl"):
        if '"mirror_averaged"' in l:
            o = json.loads(l); out[o["image"][2:]] = np.array(o["mirror_averaged"])
    return out
MU = read_mirror("unmasked"); MM = read_mirror("masked-test")
def side(masked):
    E,P,PP=(MM,Mp,PM) if masked else (MU,Up,PU)
    full,per,msk={}, {}, {}
    for im in images:
        x=E[im]/np.linalg.norm(E[im]); m=P.get(im,0)>=THR
        full[im]=apply(0,x) if m else x; per[im]=PP[im]/np.linalg.norm(PP[im]); msk[im]=m
    return full,per,msk
def kind(a,b): return "masked-masked" if a and b else ("masked-unmasked" if a or b else "unmasked-unmasked")
for name,fm,sm in [("unmasked-unmasked",False,False),("masked-unmasked",False,True),("masked-masked",True,True)]:
    A,PA,MA=side(fm); B,PB,MB=side(sm)
    for fuse in (False,True):
        def decide(i,j):
            d=np.linalg.norm(A[i]-B[j]); k=kind(MA[i],MB[j])
            if fuse and k!="unmasked-unmasked":
                return w*d+(1-w)*np.linalg.norm(PA[i]-PB[j]) <= ft[k]
            return d <= ct[k]
        gen=[decide(key(p[0],p[1]),key(p[2],p[3])) for p in pairs if p[4]]
        fa=0; n=0
        for k in range(nfold):
            ims=[im for im in images if fold_of[im]==k]
            X=np.stack([A[i] for i in ims]); Y=np.stack([B[i] for i in ims])
            D=np.sqrt(np.maximum(2-2*X@Y.T,0))
            ma=np.array([MA[i] for i in ims]); mb=np.array([MB[i] for i in ims])
            T=np.where(ma[:,None]&mb[None,:],ct["masked-masked"],np.where(ma[:,None]|mb[None,:],ct["masked-unmasked"],ct["unmasked-unmasked"]))
            if fuse:
                XP=np.stack([PA[i] for i in ims]); YP=np.stack([PB[i] for i in ims])
                DP=np.sqrt(np.maximum(2-2*XP@YP.T,0)); Mx=ma[:,None]|mb[None,:]
                D=np.where(Mx,w*D+(1-w)*DP,D)
                T=np.where(ma[:,None]&mb[None,:],ft["masked-masked"],np.where(Mx,ft["masked-unmasked"],ct["unmasked-unmasked"]))
            names=np.array([i.split("/")[0] for i in ims]); diff=names[:,None]!=names[None,:]
            iu=np.triu(np.ones_like(diff),1).astype(bool); sel=diff&iu
            fa+=np.sum((D<=T)&sel); n+=np.sum(sel)
        print(f"{name:18s} {'fused ' if fuse else 'full  '} FMR {100*fa/n:.3f}% ({fa}/{n})  FNMR {100*(1-np.mean(gen)):.2f}%",flush=True)
