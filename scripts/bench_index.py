#!/usr/bin/env python3
"""Side-by-side ANN benchmark: Facet's HNSW vs hnswlib vs FAISS HNSW on the same .fvecs data.

Each library runs in its own process (so memory deltas do not mix), a build with the same M, ef_construction
and number of build threads (--build-threads, default 1), then the smallest ef reaching the target recall@k against the exact
ground truth (same ef ladder and refinement for all three), then queries/second at 1 and 2 threads
(best of two passes), per wall-clock second and per CPU second of the process (steadier on a loaded machine),
and the build's wall-clock and CPU time. Prints a table and writes the JSON lines to --out.

  python3 scripts/bench_index.py --data DIR [--facet .build/release/facet] [--k 10] [--target-recall 0.95]
                                 [--m 16] [--ef-construction 200] [--threads 1,2] [--build-threads 1]
                                 [--libs facet,facet-int8,facet-fp16,hnswlib,faiss]
facet-int8 / facet-fp16 are Facet with scalar-quantised graph storage, re-ranked on the full vectors.
DIR holds base.fvecs, query.fvecs, groundtruth.ivecs (e.g. written by `facet bench index --synthetic N --save-dir DIR`).
"""
import argparse, json, os, subprocess, sys, time

LADDER = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096]


def read_vecs(path, dtype):
    import numpy as np
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    rows = raw.reshape(-1, d + 1)
    assert (rows[:, 0] == d).all(), f"{path}: ragged rows"
    return rows[:, 1:].copy().view(dtype)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def recall_at(found, truth, k):
    hits = 0
    for f, t in zip(found, truth):
        hits += len(set(int(x) for x in f[:k]) & set(int(x) for x in t[:k]))
    return hits / (k * len(truth))


def run_library(lib, args):
    import numpy as np
    base = read_vecs(os.path.join(args.data, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(args.data, "query.fvecs"), np.float32)
    truth = read_vecs(os.path.join(args.data, "groundtruth.ivecs"), np.int32)[:, :args.k]
    n, d = base.shape
    before = rss()
    t0, c0 = time.perf_counter(), time.process_time()
    if lib == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space="l2", dim=d)
        index.init_index(max_elements=n, M=args.m, ef_construction=args.ef_construction, random_seed=100)
        index.add_items(base, np.arange(n), num_threads=args.build_threads)

        def search(ef, threads):
            index.set_ef(ef)
            labels, _ = index.knn_query(queries, k=args.k, num_threads=threads)
            return labels
    elif lib == "faiss":
        import faiss
        faiss.omp_set_num_threads(args.build_threads)
        index = faiss.IndexHNSWFlat(d, args.m)
        index.hnsw.efConstruction = args.ef_construction
        index.add(base)

        def search(ef, threads):
            faiss.omp_set_num_threads(threads)
            index.hnsw.efSearch = ef
            _, labels = index.search(queries, args.k)
            return labels
    else:
        raise SystemExit(f"unknown library {lib}")
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    memory = rss() - before
    print(f"[{lib}] build {build:.1f} s, rss delta {memory} bytes", file=sys.stderr)

    def recall(ef):
        r = recall_at(search(ef, 1), truth, args.k)
        print(f"[{lib}] ef {ef}: recall@{args.k} {r:.4f}", file=sys.stderr)
        return r

    low, chosen, chosen_recall = args.k - 1, None, 0.0
    for ef in [e for e in LADDER if e >= args.k] + [n]:
        r = recall(ef)
        if r >= args.target_recall:
            chosen, chosen_recall = ef, r
            break
        low = ef
    lo, hi = low, chosen
    while hi - lo > max(1, hi // 16):
        mid = (lo + hi) // 2
        r = recall(mid)
        if r >= args.target_recall:
            hi, chosen_recall = mid, r
        else:
            lo = mid
    chosen = hi
    chosen_recall = recall_at(search(chosen, 1), truth, args.k)
    out = []
    for t in [int(x) for x in args.threads.split(",")]:
        best, best_cpu = 0.0, 0.0
        for _ in range(2):
            s, c = time.perf_counter(), time.process_time()
            search(chosen, t)
            best = max(best, len(queries) / (time.perf_counter() - s))
            best_cpu = max(best_cpu, len(queries) / (time.process_time() - c))
        out.append({"n": n, "dim": d, "k": args.k, "recall": round(chosen_recall, 4), "ef": chosen, "qps": round(best, 1),
                    "build_seconds": round(build, 3), "cpu_qps": round(best_cpu, 1), "build_cpu_seconds": round(build_cpu, 3),
                    "memory_bytes": memory, "threads": t, "build_threads": args.build_threads})
    for line in out:
        print(json.dumps(line))


def run_streaming(cmd):
    """Runs cmd, passing its standard error through line by line (progress of long runs); returns (rc, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    for line in p.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        err.append(line)
    out = p.stdout.read()
    return p.wait(), out, "".join(err)


def run_facet(args, storage="float32"):
    cmd = [args.facet, "bench", "index", "--storage", storage, "--build-threads", str(args.build_threads), "--base", os.path.join(args.data, "base.fvecs"),
           "--query", os.path.join(args.data, "query.fvecs"), "--groundtruth", os.path.join(args.data, "groundtruth.ivecs"),
           "--k", str(args.k), "--target-recall", str(args.target_recall), "--m", str(args.m),
           "--ef-construction", str(args.ef_construction), "--threads", args.threads, "--json"]
    print("+ " + " ".join(cmd), file=sys.stderr)
    rc, stdout, stderr = run_streaming(cmd)
    if rc != 0:
        raise SystemExit(f"facet failed ({rc})")
    rss_delta = None
    for line in stderr.splitlines():
        if "rss_delta_bytes=" in line:
            rss_delta = int(line.split("rss_delta_bytes=")[1])
    rows = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    for r in rows:
        r["rss_delta_bytes"] = rss_delta
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--facet", default=".build/release/facet")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--build-threads", type=int, default=1)
    ap.add_argument("--libs", default="facet,hnswlib,faiss")
    ap.add_argument("--out", default=None, help="write all result rows here (JSON lines)")
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)   # internal: run one Python library in this process
    args = ap.parse_args()
    if args.only:
        run_library(args.only, args)
        return
    rows = {}
    if args.out:
        open(args.out, "w").close()
    for lib in args.libs.split(","):
        started, load_before = time.strftime("%H:%M:%S", time.gmtime()), os.getloadavg()[0]
        print(f"[{lib}] started {started} UTC, load average {load_before:.1f}", file=sys.stderr, flush=True)
        if lib == "facet":
            rows[lib] = run_facet(args)
        elif lib in ("facet-int8", "facet-fp16"):
            rows[lib] = run_facet(args, "int8" if lib == "facet-int8" else "float16")
        else:
            cmd = [sys.executable, __file__, "--only", lib] + [a for a in sys.argv[1:]]
            rc, stdout, _ = run_streaming(cmd)
            if rc != 0:
                raise SystemExit(f"{lib} failed ({rc})")
            rows[lib] = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
        load_after = os.getloadavg()[0]
        for r in rows[lib]:
            r["load_average"] = [round(load_before, 1), round(load_after, 1)]
            r["started_utc"] = started
        # Written as each library finishes, so a long run that is stopped keeps what it measured.
        if args.out:
            with open(args.out, "a") as f:
                for r in rows[lib]:
                    f.write(json.dumps({"library": lib, **r}) + "\n")
        for r in rows[lib]:
            print(f"[{lib}] " + json.dumps(r), file=sys.stderr, flush=True)
    ref = rows.get("hnswlib")
    threads = [int(x) for x in args.threads.split(",")]
    n, d = next(iter(rows.values()))[0]["n"], next(iter(rows.values()))[0]["dim"]
    print(f"\n{n} x {d}, k={args.k}, target recall@{args.k} >= {args.target_recall}, M={args.m}, ef_construction={args.ef_construction}, "
          f"build threads={args.build_threads}")
    head = (f"| library | recall@{args.k} | ef | " + " | ".join(f"QPS {t}T" for t in threads)
            + f" | QPS/CPU-s {threads[0]}T | build s | build CPU s | memory MB |")
    if ref:
        head += f" QPS/hnswlib ({threads[0]}T) | QPS/CPU-s/hnswlib | build/hnswlib | build CPU/hnswlib | memory/hnswlib |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for lib, rs in rows.items():
        by_t = {r["threads"]: r for r in rs}
        r0 = rs[0]
        mem = r0.get("rss_delta_bytes") or r0["memory_bytes"]
        t0_ = by_t[threads[0]]
        line = f"| {lib} | {r0['recall']:.4f} | {r0['ef']} | " + " | ".join(f"{by_t[t]['qps']:.0f}" for t in threads)
        line += f" | {t0_['cpu_qps']:.0f} | {r0['build_seconds']:.1f} | {r0['build_cpu_seconds']:.1f} | {mem / 1e6:.0f} |"
        if ref:
            line += (f" {t0_['qps'] / ref[0]['qps']:.2f} | {t0_['cpu_qps'] / ref[0]['cpu_qps']:.2f} |"
                     f" {r0['build_seconds'] / ref[0]['build_seconds']:.2f} | {r0['build_cpu_seconds'] / ref[0]['build_cpu_seconds']:.2f} |"
                     f" {mem / ref[0]['memory_bytes']:.2f} |")
        print(line)
    print("memory = growth of the process's resident set during the build (facet: same measure; its own accounting is in --out).")
    print("load average (1 min) at the start / end of each library: "
          + ", ".join(f"{lib} {rs[0]['load_average'][0]}/{rs[0]['load_average'][1]}" for lib, rs in rows.items()))


if __name__ == "__main__":
    main()
