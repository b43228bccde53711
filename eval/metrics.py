"""nDCG@10, R@100 and MRR@10 with trec_eval semantics, through pytrec_eval."""

from __future__ import annotations

import numpy as np
import pytrec_eval

# report key -> pytrec_eval measure
MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "mrr@10": "recip_rank"}


def _trec_order(hits: dict[str, float]) -> list[tuple[str, float]]:
    """trec_eval's ranking: score descending, ties by docid descending."""
    return sorted(hits.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def per_query(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """qid -> {ndcg@10, recall@100, mrr@10} for every judged query (a judged query missing from the run scores 0)."""
    run = {q: {d: float(s) for d, s in hits.items()} for q, hits in run.items() if q in qrels}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(run)
    # MRR@10: reciprocal rank within the top 10, i.e. trec_eval recip_rank on the run cut at depth 10
    top10 = {q: dict(_trec_order(h)[:10]) for q, h in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out = {}
    for qid in qrels:
        if not any(r > 0 for r in qrels[qid].values()):
            continue  # trec_eval skips queries with no relevant document
        m = full.get(qid, {})
        out[qid] = {"ndcg@10": m.get("ndcg_cut_10", 0.0), "recall@100": m.get("recall_100", 0.0),
                    "mrr@10": rr.get(qid, {}).get("recip_rank", 0.0)}
    return out


def summarize(pq: dict[str, dict[str, float]]) -> dict[str, float]:
    """Means of per-query metrics over the queries."""
    return {key: round(float(np.mean([m[key] for m in pq.values()])), 6) for key in MEASURES} | {"queries": len(pq)}


def evaluate(run, qrels) -> dict[str, float]:
    """Means over judged queries (queries absent from the run count as 0, as `trec_eval -c` does)."""
    return summarize(per_query(run, qrels))


def mean_per_query(per_queries: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """One system's per-query metrics averaged over several of its runs (e.g. its training seeds), on the queries
    every run was judged on: a paired test over queries then compares systems rather than single trainings."""
    qids = sorted(set.intersection(*(set(pq) for pq in per_queries)))
    return {q: {key: float(np.mean([pq[q][key] for pq in per_queries])) for key in MEASURES} for q in qids}
