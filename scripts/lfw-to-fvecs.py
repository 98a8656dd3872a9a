#!/usr/bin/env python3
"""Converts `facet embed --json` output (JSON Lines, one object per image) into an ANN benchmark set.

  python3 scripts/lfw-to-fvecs.py EMBEDDINGS.jsonl OUT_DIR [--k 100]

Per image the largest detected face is used (images without a face are skipped); the identity is the image's
directory name. Split: for every identity with two or more images, its first image (sorted by name) is a query
and the others go to the base; identities with one image are base-only distractors. Writes OUT_DIR/base.fvecs,
query.fvecs, groundtruth.ivecs (exact k nearest base rows by squared L2, numpy float64), and labels.tsv
(row, set, identity, image) so results can be traced back. Deterministic for a given input (order-independent).
Then: python3 scripts/bench_index.py --data OUT_DIR ...
"""
import argparse, json, os, sys
import numpy as np


def write_vecs(path, rows, dtype):
    rows = np.ascontiguousarray(rows, dtype=dtype)
    head = np.full((rows.shape[0], 1), rows.shape[1], dtype=np.int32)
    np.hstack([head, rows.view(np.int32)]).tofile(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings")
    ap.add_argument("out")
    ap.add_argument("--k", type=int, default=100)
    args = ap.parse_args()

    faces = {}   # image -> embedding of its largest face
    skipped = 0
    with open(args.embeddings) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{args.embeddings}:{n}: not JSON ({e})")
            best, best_area = None, -1
            for face in obj.get("faces") or []:
                box, emb = face.get("box"), face.get("embedding")
                if not emb or not box or len(box) != 4:
                    continue
                area = max(0, box[2] - box[0]) * max(0, box[3] - box[1])
                if area > best_area:
                    best, best_area = emb, area
            if best is None:
                skipped += 1
                continue
            faces[os.path.normpath(obj["image"])] = best
    if not faces:
        sys.exit("no embeddings found")
    dims = {len(e) for e in faces.values()}
    if len(dims) != 1:
        sys.exit(f"embeddings of different lengths: {sorted(dims)}")

    by_identity = {}
    for image in sorted(faces):
        by_identity.setdefault(os.path.basename(os.path.dirname(image)), []).append(image)
    base_rows, query_rows, labels = [], [], []
    for identity in sorted(by_identity):
        images = by_identity[identity]
        if len(images) >= 2:
            query_rows.append((identity, images[0]))
            base_rows.extend((identity, im) for im in images[1:])
        else:
            base_rows.append((identity, images[0]))
    base = np.array([faces[im] for _, im in base_rows], dtype=np.float32)
    queries = np.array([faces[im] for _, im in query_rows], dtype=np.float32)
    k = min(args.k, len(base))
    b64, q64 = base.astype(np.float64), queries.astype(np.float64)
    d2 = (q64 * q64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2 * q64 @ b64.T
    truth = np.argsort(d2, axis=1, kind="stable")[:, :k].astype(np.int32)

    os.makedirs(args.out, exist_ok=True)
    write_vecs(os.path.join(args.out, "base.fvecs"), base, np.float32)
    write_vecs(os.path.join(args.out, "query.fvecs"), queries, np.float32)
    write_vecs(os.path.join(args.out, "groundtruth.ivecs"), truth, np.int32)
    with open(os.path.join(args.out, "labels.tsv"), "w") as f:
        for i, (identity, im) in enumerate(base_rows):
            f.write(f"{i}\tbase\t{identity}\t{im}\n")
        for i, (identity, im) in enumerate(query_rows):
            f.write(f"{i}\tquery\t{identity}\t{im}\n")
    same = np.mean([base_rows[truth[i, 0]][0] == query_rows[i][0] for i in range(len(query_rows))])
    print(f"{len(faces)} images with a face ({skipped} without), {len(by_identity)} identities, {base.shape[1]}-d: "
          f"{len(base)} base, {len(queries)} queries; nearest base row has the query's identity for {same:.1%}")


if __name__ == "__main__":
    main()
