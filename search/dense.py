"""Encode queries one at a time (online latency), search the FAISS index, return ranked hits."""

from __future__ import annotations

import time

from effir.core.timing import latency_ms


def dense_search(encoder, index, queries: dict[str, str], k: int = 1000, remove_query: bool = False):
    """→ (qid -> [(docid, score)], {"query_encode": latency, "search": latency})."""
    results, t_enc, t_search = {}, [], []
    extra = 1 if remove_query else 0
    k_eff = min(k + extra, index.index.ntotal)
    for qid, text in queries.items():
        t0 = time.perf_counter()
        vec, _ = encoder.encode([text], side="query")
        t1 = time.perf_counter()
        scores, idx = index.search(vec, k_eff)
        t2 = time.perf_counter()
        t_enc.append(t1 - t0)
        t_search.append(t2 - t1)
        hits = [(index.docids[i], float(s)) for s, i in zip(scores[0], idx[0]) if i >= 0]
        if remove_query:
            hits = [h for h in hits if h[0] != qid]
        results[qid] = hits[:k]
    return results, {"query_encode": latency_ms(t_enc), "search": latency_ms(t_search)}
