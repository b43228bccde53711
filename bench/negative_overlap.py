"""How different are a model's dense hard negatives from BM25's? Per training query, the two top-30 lists minus positives.

Builds the training queries as `effir compress train` does (a qrels split and label-free title → body pairs), mines
each query's top 30 by BM25 and by MODEL's dense ranking (`--negatives-by`; the corpus's embedding shards are
reused from `--cache` when a training run has made them there), and prints per source: how many of the dense
negatives BM25's top 30 holds too, and how often each ranks a positive first (the training queries the model already
answers).

    .venv/bin/python bench/negative_overlap.py --model runs/llm/rebuilt/smollm2-ft-3k \
      --dataset ../shared/data/beir/scifact --title-body-limit 700 --passage-max-length 128 \
      --cache runs/llm/smollm2-effir-2x-gact-mixed-3k-dense-neg/data/dense-negatives
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def compare(dense: dict, bm25: dict, items) -> dict:
    shared, dense_first, bm25_first = [], 0, 0
    for qid, _, positives in items:
        d = [doc for doc, _ in dense[qid] if doc not in positives]
        b = {doc for doc, _ in bm25[qid] if doc not in positives}
        shared.append(len(set(d) & b) / max(len(d), 1))
        dense_first += bool(dense[qid]) and dense[qid][0][0] in positives
        bm25_first += bool(bm25[qid]) and bm25[qid][0][0] in positives
    n = len(items)
    return {"queries": n, "dense_negatives_also_in_bm25_top30": round(sum(shared) / n, 3),
            "positive_first_dense": round(dense_first / n, 3), "positive_first_bm25": round(bm25_first / n, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--title-body-limit", type=int, default=700)
    ap.add_argument("--passage-max-length", type=int, default=None)
    ap.add_argument("--cache", default=None, help="the dense corpus vectors' folder (default: a temporary one)")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    from effir.compression import pairs
    from effir.compression.pairs import NEGATIVES_DEPTH
    from effir.core.data import BeirDataset

    ds = BeirDataset(args.dataset)
    qrels_items, corpus = pairs.qrels_examples(ds, args.split)
    sources = {f"{args.split} qrels": qrels_items,
               "title→body": pairs.title_body_examples(corpus, args.title_body_limit)}
    work = Path(tempfile.mkdtemp(prefix="negative-overlap-"))
    cache = Path(args.cache) if args.cache else work / "dense"
    figures = {}
    for name, items in sources.items():
        queries = {qid: q for qid, q, _ in items}
        dense = pairs.dense_hits(args.model, corpus, queries, NEGATIVES_DEPTH, cache, args.passage_max_length)
        bm25 = pairs.bm25_hits(corpus, queries, NEGATIVES_DEPTH, work / name.replace(" ", "-"))
        figures[name] = compare(dense, bm25, items)
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
