#!/usr/bin/env python3
"""Table of scripts/bench-embedder.sh results: Facet vs dlib C++ (same OpenBLAS kernels) vs Python dlib.

CPU = median process CPU ms per item (all threads; robust to other load on the machine).
wall = best-of-N wall ms per item (minimum over all runs of all rounds).
Ratios are dlib / Facet (> 1: Facet faster); for 2 cores Facet's best configuration is compared with dlib C++
with two OpenBLAS threads."""
import re
import statistics
import sys

LINE = re.compile(r"(\S+) (embed|mmod|pipeline) mode=(\S+) threads=(\S+) (?:batch=(\d+)|upsample=(\d+))\S*(?: \S+=\S+)*? "
                  r"ms_per_item=([\d.]+) min_ms_per_item=([\d.]+) cpu_ms_per_item=([\d.]+)")
LINE_REF = re.compile(r"(\S+) (embed|mmod|pipeline) threads=(\S+) (?:batch=(\d+)|upsample=(\d+))(?: \S+=\S+)*? "
                      r"ms_per_item=([\d.]+) min_ms_per_item=([\d.]+) cpu_ms_per_item=([\d.]+)")

rows = {}
for line in open(sys.argv[1]):
    m = LINE.match(line)
    if m:
        who, what, mode, th, b, up, med, best, cpu = m.groups()
        name = f"{who}[{mode}] t={th}"
    else:
        m = LINE_REF.match(line)
        if not m:
            continue
        who, what, th, b, up, med, best, cpu = m.groups()
        name = f"{who} t={th}"
    key = (what, int(b) if b else int(up))
    d = rows.setdefault(key, {}).setdefault(name, {"med": [], "best": [], "cpu": []})
    d["med"].append(float(med))
    d["best"].append(float(best))
    d["cpu"].append(float(cpu))


def cpu(d):
    return statistics.median(d["cpu"])


def best(d):
    return min(d["best"])


order = {"embed": 0, "pipeline": 1, "mmod": 2}
print("\n== all configurations: best-of-N wall ms per item [median CPU ms per item] (runs = rounds)")
for (what, k), d in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
    label = {"embed": f"embed batch={k}", "mmod": f"mmod upsample={k}", "pipeline": "pipeline (upsample 0)"}[what]
    print(label)
    for n, v in sorted(d.items()):
        print(f"    {n:36s} {best(v):9.2f}  [{cpu(v):9.2f}]  rounds={len(v['cpu'])}")

print("\n== table (ms per face for embed, per image for pipeline/mmod; ratio = dlib / Facet, > 1: Facet faster)")
hdr = ("| measurement | Facet 1 thr CPU | dlib C++ 1 thr CPU | ratio CPU | Facet 2 cores best wall (config) "
       "| dlib C++ 2 thr best wall | ratio wall 2 cores | Python dlib wall | Python / Facet 2 cores |")
print(hdr)
print("|" + "---|" * 9)
for (what, k), d in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
    label = {"embed": f"embed batch {k}", "mmod": f"MMOD upsample {k}", "pipeline": "full pipeline, 250x250 LFW"}[what]
    f1 = d.get("facet[blas] t=1")
    d1 = d.get("dlibcpp t=1")
    d2 = d.get("dlibcpp t=2")
    py = d.get("pydlib t=default")
    f2s = {n: v for n, v in d.items() if n.startswith("facet[") and "reference" not in n and n.endswith("t=2")}
    f2n, f2 = (min(f2s.items(), key=lambda kv: best(kv[1])) if f2s else (None, None))
    cells = [label]
    cells.append(f"{cpu(f1):.2f}" if f1 else "-")
    cells.append(f"{cpu(d1):.2f}" if d1 else "-")
    cells.append(f"{cpu(d1) / cpu(f1):.2f}x" if f1 and d1 else "-")
    cells.append(f"{best(f2):.2f} ({f2n.split('[')[1].split(']')[0]})" if f2 else "-")
    cells.append(f"{best(d2):.2f}" if d2 else "-")
    cells.append(f"{best(d2) / best(f2):.2f}x" if f2 and d2 else "-")
    cells.append(f"{best(py):.2f}" if py else "-")
    cells.append(f"{best(py) / best(f2):.1f}x" if py and f2 else "-")
    print("| " + " | ".join(cells) + " |")
ref = [(k, d["facet[blas-reference] t=1"], d["facet[blas] t=1"]) for k, d in rows.items() if "facet[blas-reference] t=1" in d and "facet[blas] t=1" in d]
if ref:
    print("\nFacet fused executor vs Facet's plain im2col path (DlibNetwork.forward), 1 thread, CPU ms per face:")
    for (what, k), r, f in sorted(ref):
        print(f"- batch {k}: {cpu(r):.2f} -> {cpu(f):.2f} ({cpu(r) / cpu(f):.2f}x)")
