#!/usr/bin/env python3
"""The pilot behind periocular-fusion-v1.json's cut row and weight (session 7, docs/masks.md), with the reference
implementation (Python dlib): for the masked-unmasked View 2 pairs of the given folds (first image unmasked, second
TEST-masked), periocular embeddings at cut rows 62 and 72 from the cached 5-point landmarks, then the best in-fold
accuracy of the full embedding, of the periocular ones and of 0.3/0.5/0.7 fusions (all equally optimistic).
Python dlib without BLAS: ~2 descriptors/s per process; fold 0 (945 images, 2 cuts) takes a few minutes on 2 cores.
Usage: scripts/masks/periocular-pilot.py CACHE_DIR LFW_DIR MASKED_DIR PAIRS MODELS_DIR FOLDS (e.g. 0)"""
import dlib, numpy as np, json, sys, os
from multiprocessing import Pool
from PIL import Image
C, LFW, MT, PAIRS, MODELS = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3].rstrip("/") + "/", sys.argv[4], sys.argv[5]
def read(name):
    out={}
    for fn in [f"{C}/{name}.jsonl", f"{C}/{name}.rev.jsonl", f"{C}/{name}.eval.jsonl"]:
        for l in open(fn):
            try: o=json.loads(l)
            except ValueError: continue
            if "faces" not in o: continue
            im=o["image"][2:]; w,h=o["width"],o["height"]
            if o["faces"]:
                f=min(o["faces"],key=lambda f:((f["box"][0]+f["box"][2])/2-w/2)**2+((f["box"][1]+f["box"][3])/2-h/2)**2)
            elif "fallback" in o: f=o["fallback"]
            else: continue
            out[im]=(f["box"],f["landmarks"],np.array(f["embedding"]))
    return out
lines=open(PAIRS).read().split("\n")
nf,per=map(int,lines[0].split()); pairs=[]
for i,l in enumerate(x for x in lines[1:] if x.strip()):
    a=l.split(); fold=i//(2*per)
    pairs.append((a[0],int(a[1]),a[0],int(a[2]),True,fold) if len(a)==3 else (a[0],int(a[1]),a[2],int(a[3]),False,fold))
key=lambda n,i:f"{n}/{n}_{i:04d}.jpg"
FOLDS=[int(x) for x in sys.argv[6].split(",")]
CUTS=[62,72]
fr=None
def work(job):
    global fr
    if fr is None: fr=dlib.face_recognition_model_v1(MODELS + "/dlib_face_recognition_resnet_model_v1.dat")
    path,(box,lm,_)=job
    img=np.array(Image.open(path).convert("RGB"))
    det=dlib.full_object_detection(dlib.rectangle(*box),[dlib.point(*p) for p in lm])
    chip=dlib.get_face_chip(img,det,size=150,padding=0.25)
    res=[]
    for c in CUTS:
        ch=chip.copy(); ch[c:,:,:]=np.array([123,117,104],dtype=np.uint8)
        d=np.array(fr.compute_face_descriptor(ch)); res.append(d/np.linalg.norm(d))
    return path,res
if __name__=="__main__":
    U=read("unmasked"); M=read("masked-test")
    sel=[p for p in pairs if p[5] in FOLDS]
    jobs={}
    for p in sel:
        a,b=key(p[0],p[1]),key(p[2],p[3])
        jobs[LFW+a]=U[a]; jobs[MT+b]=M[b]
    out=f"periocular-pilot-{sys.argv[6].replace(',','_')}.npz"
    done={}
    if os.path.exists(out): done=dict(np.load(out,allow_pickle=True)["d"].item())
    todo=[(k,v) for k,v in jobs.items() if k not in done]
    print(len(jobs),"images,",len(todo),"to do",flush=True)
    with Pool(2) as pool:
        for i,(k,r) in enumerate(pool.imap_unordered(work,todo,chunksize=8)):
            done[k]=r
            if i%200==0: print(i,flush=True); np.savez(out,d=done)
    np.savez(out,d=done)
    d=done
    sel=[p for p in pairs if p[5] in FOLDS]
    same=np.array([p[4] for p in sel])
    def n(x): return x/np.linalg.norm(x)
    full=np.array([np.linalg.norm(n(U[key(p[0],p[1])][2])-n(M[key(p[2],p[3])][2])) for p in sel])
    peri=[np.array([np.linalg.norm(d[LFW+key(p[0],p[1])][c]-d[MT+key(p[2],p[3])][c]) for p in sel]) for c in range(2)]
    def bestacc(s):
        best=0
        for t in np.unique(s): best=max(best,np.mean((s<=t)==same))
        return best
    print("full frozen MU",bestacc(full))
    for c,pp in zip(CUTS,peri):
        print("peri cut",c,bestacc(pp))
        for w in (0.3,0.5,0.7): print("  fused w_full",w,bestacc(w*full+(1-w)*pp))
    
