"""Index at scale: a synthetic 1M × 576 set (the SmolLM2 dimension) through `effir index`, IVF-PQ.

Writes the vectors as ordinary effir shards (so the build path is the one users run), builds the index shard by
shard, and reports build time, bytes per vector, the peak RSS of the build process, and batched search QPS and
recall@10 against exact search over nprobe × K, K the candidates re-scored exactly from the shards on disk
(`effir search --rerank K`; K = 0: the compressed codes alone).

    .venv/bin/python bench/index_scale.py --out runs/scale            # 1M × 576, IVF4096,PQ64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_shards(out: Path, n: int, dim: int, shard: int, seed: int = 0) -> None:
    """Unit vectors around 1000 cluster centres, spread along a shared 64-dimensional subspace plus a little
    isotropic noise (real embeddings have a fast-decaying spectrum; pure isotropic noise would make every neighbour
    nearly equidistant), written as effir Parquet shards + manifest."""
    from effir.core.files import sha256_file, write_json
    from effir.encoder.shards import MANIFEST, ROW_GROUP, _table, shard_name

    if (out / MANIFEST).exists() and json.loads((out / MANIFEST).read_text()).get("complete"):
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    basis = (rng.standard_normal((64, dim)) / np.sqrt(64)).astype(np.float32)
    shards = []
    for i, start in enumerate(range(0, n, shard)):
        rows = min(shard, n - start)
        x = (centres[rng.integers(0, 1000, rows)] + 0.8 * rng.standard_normal((rows, 64)).astype(np.float32) @ basis
             + 0.2 * rng.standard_normal((rows, dim)).astype(np.float32))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        import pyarrow.parquet as pq

        pq.write_table(_table([f"v{j}" for j in range(start, start + rows)], x, np.zeros(rows, np.int32), "float32"),
                       out / shard_name(i), row_group_size=ROW_GROUP)
        shards.append({"file": shard_name(i), "rows": rows, "first_row": start, "last_row": start + rows - 1,
                       "sha256": sha256_file(out / shard_name(i))})
    write_json(out / MANIFEST, {"format": 1, "model": "synthetic", "model_path": "", "model_fingerprint": "synthetic",
                                "pooling": None, "normalized": True, "dim": dim, "dtype": "float32",
                                "corpus": "synthetic", "corpus_fingerprint": str(seed), "corpus_count": n,
                                "shard_size": shard, "shards": shards, "complete": True})


def _rss_bytes() -> dict:
    """Resident memory split as the kernel counts it: the process's own (anonymous: the index, numpy buffers) and
    file pages it has mapped in (the memory-mapped raw copy, shared with the page cache and dropped under pressure)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("RssAnon", "RssFile")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/scale")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--factory", default="IVF4096,PQ64")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--nprobe", default="1,4,16,64")
    ap.add_argument("--rerank", default="0,50,100,200", help="candidates re-scored exactly (0: none)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per setting, after one warm-up; median")
    ap.add_argument("--loaded-bytes", metavar="INDEX", help=argparse.SUPPRESS)  # the fresh-process measurement
    args = ap.parse_args()
    if args.loaded_bytes:
        from effir.index.build import LoadedIndex

        before = _rss_bytes()["RssAnon"]
        _index = LoadedIndex(args.loaded_bytes)
        print(_rss_bytes()["RssAnon"] - before)
        return
    out = Path(args.out)
    shards = out / "shards"
    synthetic_shards(shards, args.n, args.dim, 50_000)
    raw_bytes = args.n * args.dim * 4

    meta_file = out / "index" / "meta.json"
    wall = None
    if not (meta_file.exists() and json.loads(meta_file.read_text())["factory"] == args.factory):
        # the build runs in its own process so its peak RSS is the build's alone
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "effir.cli", "index", "--shards", str(shards), "--out",
                        str(out / "index"), "--factory", args.factory], check=True)
        wall = round(time.perf_counter() - t0, 1)
    meta = json.loads(meta_file.read_text())  # a finished build is reused: rerun to time the search alone

    import faiss

    from effir.encoder.shards import load_all
    from effir.index.build import LoadedIndex

    _ids, x = load_all(shards)
    rng = np.random.default_rng(1)
    q = x[rng.choice(len(x), args.queries, replace=False)] + 0.05 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    t0 = time.perf_counter()
    _, truth = exact.search(q, 10)
    exact_qps = args.queries / (time.perf_counter() - t0)
    del exact, x
    from effir.search.rerank import ShardVectors, exact_rerank

    vectors = ShardVectors(shards)  # the first open writes the raw copy it memory-maps (not timed)
    rss_before = _rss_bytes()
    # what a process serving the index holds for it (codes, lists, docids), measured in a fresh process
    loaded_bytes = int(subprocess.run([sys.executable, __file__, "--loaded-bytes", str(out / "index")], check=True,
                                      capture_output=True, text=True).stdout)
    rows = []
    for nprobe in [int(v) for v in args.nprobe.split(",")]:
        idx = LoadedIndex(out / "index", nprobe=nprobe)
        for k in [int(v) for v in args.rerank.split(",")]:
            seconds = []
            for _ in range(1 + args.repeats):  # the first pass warms caches and is not counted
                t0 = time.perf_counter()
                _, got = idx.search(q, max(k, 10))
                if k:
                    _, got = exact_rerank(vectors, q, got, 10)
                seconds.append(time.perf_counter() - t0)
            qps = args.queries / float(np.median(seconds[1:]))
            recall = np.mean([len(set(g[:10]) & set(t)) / 10 for g, t in zip(got, truth)])
            rows.append({"nprobe": nprobe, "rerank": k, "qps": round(qps, 1), "recall@10": round(float(recall), 4)})
    report = {"n": args.n, "dim": args.dim, "factory": args.factory, "build_seconds": meta["build_seconds"],
              "build_wall_seconds": wall, "bytes_per_vector": meta["bytes_per_vector"],
              "index_bytes": meta["bytes_on_disk"], "raw_float32_bytes": raw_bytes,
              "build_peak_rss_bytes": meta["peak_memory_bytes"], "exact_qps": round(exact_qps, 1), "search": rows}
    rss = _rss_bytes()  # growth over the sweep: the index, search buffers, allocator slack; file pages: the raw copy
    report["loaded_index_bytes"] = loaded_bytes
    report["search_rss_anon_bytes"] = rss["RssAnon"] - rss_before["RssAnon"]
    report["search_rss_file_bytes"] = rss["RssFile"] - rss_before["RssFile"]
    report["threads"] = faiss.omp_get_max_threads()
    (out / "scale.json").write_text(json.dumps(report, indent=2))
    print(f"{args.n:,} x {args.dim} {args.factory}: build {meta['build_seconds']:.0f}s, "
          f"{meta['bytes_per_vector']} B/vector ({meta['bytes_on_disk'] / 1e6:.0f} MB vs {raw_bytes / 1e9:.2f} GB raw), "
          f"peak RSS while building {meta['peak_memory_bytes'] / 1e9:.2f} GB; exact search {exact_qps:.0f} QPS")
    print(f"loaded index {loaded_bytes / args.n:.0f} B/vector in memory (fresh process); this process grew "
          f"{report['search_rss_anon_bytes'] / args.n:.0f} B/vector over the sweep (+ buffers, allocator slack), "
          f"mapped file pages {report['search_rss_file_bytes'] / 1e9:.2f} GB (re-ranked rows; page cache), "
          f"{report['threads']} threads; QPS: {args.queries} queries batched, median of {args.repeats} passes")
    for r in rows:
        print(f"  nprobe {r['nprobe']:>3}, rerank {r['rerank']:>3}: {r['qps']:>8.0f} QPS, "
              f"recall@10 {r['recall@10']:.3f}")


if __name__ == "__main__":
    main()
