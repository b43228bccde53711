"""Fusing ranked lists, as Pyserini does: reciprocal-rank fusion and score interpolation.

    RRF:     score(d) = Σ_runs 1 / (k + rank_run(d))                      (rank from 1; k = 60)
    interp:  score(d) = Σ_runs w_run · (s_run(d) − min_run) / (max_run − min_run)   (per query; absent → 0)

A query present in only some runs is fused from the runs that have it (and counted, so the caller can warn).

>>> a = {"q1": {"d1": 9.0, "d2": 5.0}}
>>> b = {"q1": {"d2": 0.8, "d3": 0.7}}
>>> fused, partial = fuse([a, b], "rrf")
>>> [(d, round(s, 5)) for d, s in fused["q1"]]
[('d2', 0.03252), ('d1', 0.01639), ('d3', 0.01613)]
>>> fused, _ = fuse([a, b], "interp", weights=[0.5, 0.5])
>>> [(d, s) for d, s in fused["q1"]]
[('d1', 0.5), ('d2', 0.5), ('d3', 0.0)]
"""

from __future__ import annotations

from effir.core.errors import EffirError

METHODS = ("rrf", "interp")
Run = dict[str, dict[str, float]]


def ranked(hits: dict[str, float], depth: int) -> list[tuple[str, float]]:
    """Hits best first (ties by docid, as trec_eval orders them), cut at `depth`."""
    return sorted(hits.items(), key=lambda h: (-h[1], h[0]))[:depth]


def rrf(runs: list[Run], k: int = 60, depth: int = 1000) -> Run:
    out: Run = {}
    for run in runs:
        for qid, hits in run.items():
            fused = out.setdefault(qid, {})
            for rank, (docid, _) in enumerate(ranked(hits, depth), 1):
                fused[docid] = fused.get(docid, 0.0) + 1.0 / (k + rank)
    return out


def interpolate(runs: list[Run], weights: list[float], depth: int = 1000) -> Run:
    out: Run = {}
    for run, w in zip(runs, weights):
        for qid, hits in run.items():
            top = ranked(hits, depth)
            lo, hi = top[-1][1], top[0][1]
            fused = out.setdefault(qid, {})
            for docid, score in top:
                fused[docid] = fused.get(docid, 0.0) + w * ((score - lo) / (hi - lo) if hi > lo else 1.0)
    return out


def fuse(runs: list[Run], method: str = "rrf", rrf_k: int = 60, weights: list[float] | None = None,
         depth: int = 1000, k: int = 1000) -> tuple[dict[str, list[tuple[str, float]]], int]:
    """(qid -> [(docid, score)] best first, cut at k; how many queries only some runs had)."""
    if len(runs) < 2:
        raise EffirError(f"fusion needs at least two runs, got {len(runs)}")
    if method not in METHODS:
        raise EffirError(f"--method {method!r}: one of {METHODS}")
    if weights is not None and len(weights) != len(runs):
        raise EffirError(f"--weights: {len(weights)} weights for {len(runs)} runs")
    query_sets = [set(run) for run in runs]
    if not set.intersection(*query_sets):
        raise EffirError("the runs share no query: they answer different topic sets")
    partial = len(set.union(*query_sets) - set.intersection(*query_sets))
    if method == "rrf":
        fused = rrf(runs, rrf_k, depth)
    else:
        fused = interpolate(runs, weights or [1.0 / len(runs)] * len(runs), depth)
    return {qid: ranked(hits, k) for qid, hits in fused.items()}, partial
