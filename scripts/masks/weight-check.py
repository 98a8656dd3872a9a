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
    same=np.array([p[4] for p in pairs]); fold=np.array([p[5] for p in pairs])
    accs=[]
    for k in range(nfold):
        tr=fold!=k; cand=np.unique(d[tr]); best,bt=-1,0
        for t in cand[::max(1,len(cand)//2000)]:
            a=np.mean((d[tr]<=t)==same[tr])
            if a>best: best,bt=a,t
        accs.append(np.mean((d[~tr]<=bt)==same[~tr]))
    imp=[]
    for k in range(nfold):
        ims=[im for im in images if fold_of[im]==k]
        X=np.stack([A[i] for i in ims]); Y=np.stack([B[i] for i in ims])
        D=np.sqrt(np.maximum(2-2*X@Y.T,0))
        XP=np.stack([PA[i] for i in ims]); YP=np.stack([PB[i] for i in ims])
        DP=np.sqrt(np.maximum(2-2*XP@YP.T,0))
        ma=np.array([routeA[i] for i in ims]); mb=np.array([routeB[i] for i in ims])
        M=ma[:,None]|mb[None,:]
        D=np.where(M,w*D+(1-w)*DP,D)
        names=np.array([i.split("/")[0] for i in ims]); diff=names[:,None]!=names[None,:]
        iu=np.triu(np.ones_like(diff),1).astype(bool); imp.append(D[diff&iu])
    imp=np.sort(np.concatenate(imp)); gen=d[same]; t=imp[int(1e-3*len(imp))]
    return np.mean(accs),np.mean(gen>=t)
for name,fm,sm in [("UU",False,False),("MU",False,True),("MM",True,True)]:
    A=tmpl(fm,True); B=tmpl(sm,True)
    PA=PM if fm else PU; PB=PM if sm else PU
    RA={im:(Mp if fm else Up).get(im,0)>=THR for im in images}; RB={im:(Mp if sm else Up).get(im,0)>=THR for im in images}
    for w in (1.0,0.7,0.6,0.5,0.4,0.3,0.0):
        acc,fn=evaluate2(A,B,PA,PB,w,RA,RB)
        print(f"{name} w={w}: acc {100*acc:.2f} FNMR@1e-3 {100*fn:.2f}",flush=True)
