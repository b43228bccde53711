"""Encode queries, search the FAISS index (optionally re-ranking its candidates exactly), return ranked hits."""

from __future__ import annotations

import time

import numpy as np

from effir.core.errors import EffirError
from effir.core.timing import latency_ms


def check_rerank(k: int, rerank: int | None) -> None:
    if rerank is not None and (rerank <= 0 or rerank < k):
        raise EffirError(f"--rerank {rerank}: re-ranking takes the index's top K and keeps k={k}, so K must be ≥ k "
                         "and above 0")


def search_vectors(index, vectors: np.ndarray, k: int, rerank=None) -> list[list[tuple[str, float]]]:
    """Per query vector: [(docid, score)] best first. `rerank`: (ShardVectors, K) to re-score the top K exactly."""
    from effir.search.rerank import exact_rerank

    depth = min(rerank[1] if rerank else k, index.index.ntotal)
    scores, ids = index.search(vectors, depth)
    if rerank:
        scores, ids = exact_rerank(rerank[0], vectors, ids, k)
    return [[(index.docids[j], float(x)) for x, j in zip(s, i) if j >= 0][:k] for s, i in zip(scores, ids)]


def dense_search(encoder, index, queries: dict[str, str], k: int = 1000, remove_query: bool = False, rerank=None):
    """Queries one at a time (online latency) → (qid -> [(docid, score)], {"query_encode": ..., "search": ...})."""
    results, t_enc, t_search = {}, [], []
    extra = 1 if remove_query else 0
    for qid, text in queries.items():
        t0 = time.perf_counter()
        vec, _ = encoder.encode([text], side="query")
        t1 = time.perf_counter()
        hits = search_vectors(index, vec, k + extra, rerank)[0]
        t2 = time.perf_counter()
        t_enc.append(t1 - t0)
        t_search.append(t2 - t1)
        if remove_query:
            hits = [h for h in hits if h[0] != qid]
        results[qid] = hits[:k]
    return results, {"query_encode": latency_ms(t_enc), "search": latency_ms(t_search)}
