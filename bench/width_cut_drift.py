"""What a cut does to the model it cuts, before any training: embedding cosine against the uncut model, and, with
--queries, how much of its ranking survives.

Encodes the first N documents of a corpus (as the encoder does: pooling, prefixes, 256 tokens) with a reference
model (e.g. the d15 folder a recipe made, `runs/llm/smollm2-effir/1-drop`) and with each cut of it (its `2-slim`
from gate training, `effir compress slim --slim-by activation` of the same folder, or a recipe's `1-drop`), and
prints the mean and lowest cosine of each document's embedding to the reference's, and the kept MLP width.

With --queries Q it also ranks a pool (the judged documents of the first Q queries of --split, plus the N
documents) for those queries, with the reference and with each cut: nDCG@10 on that split's judgments, and the
share of the reference's top 10 each cut keeps. Use a training split: this compares cuts, it is not an evaluation.

    .venv/bin/python bench/width_cut_drift.py --reference runs/llm/smollm2-effir/1-drop \\
        --models runs/llm/smollm2-effir/2-slim,runs/llm/smollm2-effir-act/2-slim
"""

from __future__ import annotations

import argparse
import json


def _ranking_pool(dataset: str, split: str, n_queries: int, pool: dict) -> tuple[dict, dict, dict]:
    """(queries, qrels, pool {docid: text}) for the first `n_queries` judged queries of `split`: `pool` plus their
    judged documents."""
    from effir.core.data import BeirDataset

    ds = BeirDataset(dataset)
    queries, qrels = ds.queries(), ds.qrels(split)
    chosen = [q for q in qrels if q in queries][:n_queries]
    judged = {d for q in chosen for d in qrels[q]}
    pool = pool | {d.docid: d.contents for d in ds.corpus() if d.docid in judged}
    return {q: queries[q] for q in chosen}, {q: qrels[q] for q in chosen}, pool


def _top(encoder, queries: dict, pool: dict, k: int = 100) -> dict[str, dict[str, float]]:
    """qid -> {docid: score} of the top k of the pool, by exact inner product as a Flat index answers."""
    import faiss

    d = encoder.encode(list(pool.values()))[0]
    index = faiss.IndexFlatIP(d.shape[1])
    index.add(d)
    scores, rows = index.search(encoder.encode(list(queries.values()), side="query")[0], min(k, len(pool)))
    ids = list(pool)
    return {qid: {ids[j]: float(x) for x, j in zip(s, r)} for qid, s, r in zip(queries, scores, rows)}


def _top10(hits: dict[str, float]) -> set[str]:
    return set(sorted(hits, key=hits.get, reverse=True)[:10])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="model folder the cuts were made from")
    ap.add_argument("--models", required=True, help="comma-separated model folders (cuts of the reference)")
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--queries", type=int, default=0, help="also rank a pool for this many queries of --split")
    ap.add_argument("--split", default="train")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import numpy as np

    from effir.compression.cli import probe_documents
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import Encoder
    from effir.eval.metrics import evaluate

    configure_threads(args.threads)
    ids, texts = probe_documents(args.dataset, args.docs)
    if args.queries:
        queries, qrels, pool = _ranking_pool(args.dataset, args.split, args.queries, dict(zip(ids, texts)))
    reference_encoder = Encoder(resolve(args.reference), device="cpu")
    reference = reference_encoder.encode(texts)[0]
    summary = {"reference": args.reference, "docs": len(texts), "rows": []}
    if args.queries:
        reference_run = _top(reference_encoder, queries, pool)
        summary |= {"queries": len(queries), "split": args.split, "pool": len(pool),
                    "reference_ndcg@10": evaluate(reference_run, qrels)["ndcg@10"]}
        print(f"{args.reference}: nDCG@10 {summary['reference_ndcg@10']:.4f} on {len(queries)} {args.split} queries "
              f"over a pool of {len(pool)}")
    for folder in args.models.split(","):
        spec = resolve(folder)
        encoder = Encoder(spec, device="cpu")
        vectors = encoder.encode(texts)[0]
        cos = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
        widths = sorted(spec.mlp_widths.values())
        row = {"model": folder, "mean_cos": round(float(cos.mean()), 4), "min_cos": round(float(cos.min()), 4),
               "dropped_mlp": len(spec.dropped_mlp), "mlp_width_total": sum(widths) if widths else None,
               "mlp_width_range": [widths[0], widths[-1]] if widths else None}
        line = (f"{folder}: cosine to {args.reference} mean {row['mean_cos']:.4f}, lowest {row['min_cos']:.4f}; "
                f"{row['dropped_mlp']} MLPs dropped, MLP widths "
                f"{f'{widths[0]}-{widths[-1]} (total {sum(widths)})' if widths else 'uncut'}")
        if args.queries:
            run = _top(encoder, queries, pool)
            row["ndcg@10"] = evaluate(run, qrels)["ndcg@10"]
            row["top10_kept"] = round(float(np.mean([len(_top10(run[q]) & _top10(reference_run[q])) / 10
                                                     for q in queries])), 4)
            line += f"; nDCG@10 {row['ndcg@10']:.4f}, keeps {row['top10_kept']:.0%} of the reference's top 10"
        summary["rows"].append(row)
        print(line)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
