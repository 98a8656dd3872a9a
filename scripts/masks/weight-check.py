#!/usr/bin/env python3
"""How the periocular fusion weight w would change the 10-fold accuracy and FNMR@FMR 1e-3 (numpy on a
`facet eval lfw --periocular` cache; per-fold heads applied as fold-heads-check.py does, detector routing at 0.40, no
cohort normalisation). Looked at after the full run, not used to choose w (docs/masks.md, session 7); a few minutes.
Usage: scripts/masks/weight-check.py CACHE_DIR PAIRS HEADS_DIR"""
import os, sys, json, numpy as np
here = os.path.dirname(os.path.abspath(__file__))
exec(open(os.path.join(here, "fold-heads-check.py")).read().split('for name, fm, sm in')[0])
PU = read_periocular("unmasked"); PM = read_periocular("masked-test")
THR=0.40
def evaluate2(A,B,PA,PB,w,routeA,routeB):
    def dist(a,b,pa,pb,masked):
        d=np.linalg.norm(a-b)
        return w*d+(1-w)*np.linalg.norm(pa-pb) if masked else d
    d=np.array([dist(A[key(p[0],p[1])],B[key(p[2],p[3])],PA[key(p[0],p[1])],PB[key(p[2],p[3])], routeA[key(p[0],p[1])] or routeB[key(p[2],p[3])]) for p in pairs])
    def impostors(ims):
        ma=np.array([routeA[i] for i in ims]); mb=np.array([routeB[i] for i in ims])
        return np.where(ma[:,None]|mb[None,:], w*unit_distances(A,B,ims)+(1-w)*unit_distances(PA,PB,ims), unit_distances(A,B,ims))
    acc,_,fnmr=fold_metrics(d,impostors)   # fold-heads-check.py
    return acc,fnmr
for name,fm,sm in [("UU",False,False),("MU",False,True),("MM",True,True)]:
    A=tmpl(fm,True); B=tmpl(sm,True)
    PA=PM if fm else PU; PB=PM if sm else PU
    RA={im:(Mp if fm else Up).get(im,0)>=THR for im in images}; RB={im:(Mp if sm else Up).get(im,0)>=THR for im in images}
    for w in (1.0,0.7,0.6,0.5,0.4,0.3,0.0):
        acc,fn=evaluate2(A,B,PA,PB,w,RA,RB)
        print(f"{name} w={w}: acc {100*acc:.2f} FNMR@1e-3 {100*fn:.2f}",flush=True)
