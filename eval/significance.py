"""Paired significance over queries: randomization (permutation) test and paired t-test."""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_randomization(a: np.ndarray, b: np.ndarray, trials: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that mean(a - b) differs from 0, flipping each query's sign at random."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0 or not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(trials, d.size))
    observed = abs(d.mean())
    null = np.abs((signs * d).mean(axis=1))
    return float((np.sum(null >= observed - 1e-12) + 1) / (trials + 1))


def paired_t(a, b) -> float:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size < 2 or not np.any(d):
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def paired_interval(a, b, level: float = 0.95) -> tuple[float, float]:
    """The t-interval of mean(a - b) over queries: how far the difference could be, not only whether it is 0."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size < 2 or not d.std():  # no spread: the interval is the difference itself (scipy would give NaN)
        mean = float(d.mean()) if d.size else 0.0
        return mean, mean
    low, high = stats.ttest_rel(a, b).confidence_interval(level)
    return float(low), float(high)


def share_interval(a, b, level: float = 0.95) -> tuple[float | None, float | None]:
    """Fieller's interval for mean(a) / mean(b) over paired queries: the shares R for which the paired t-test of
    a − R·b keeps mean 0, so B's own spread counts as well as the difference's. None at an end that is unbounded
    (B's mean not clearly above 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or not b.mean():
        return None, None
    cov = np.cov(a, b)  # sample (co)variances, as the t-test uses
    q = stats.t.ppf((1 + level) / 2, a.size - 1) ** 2 / a.size
    # (mean(a) − R·mean(b))² ≤ q·var(a − R·b) is the quadratic A·R² − 2·B·R + C ≤ 0
    quad = b.mean() ** 2 - q * cov[1, 1]
    half = a.mean() * b.mean() - q * cov[0, 1]
    const = a.mean() ** 2 - q * cov[0, 0]
    if quad <= 0:
        return None, None
    root = np.sqrt(max(half ** 2 - quad * const, 0.0))
    return float((half - root) / quad), float((half + root) / quad)


def compare(per_query_a: dict, per_query_b: dict, metric: str = "ndcg@10") -> dict:
    """System A against B on the queries both were judged on: the difference of their means and A's mean as a share
    of B's, each with its 95 % interval, and the two paired tests' p-values."""
    qids = sorted(set(per_query_a) & set(per_query_b))
    a = np.array([per_query_a[q][metric] for q in qids])
    b = np.array([per_query_b[q][metric] for q in qids])
    share = float(a.mean() / b.mean()) if b.size and b.mean() else None
    return {"metric": metric, "queries": len(qids), "delta": round(float(a.mean() - b.mean()), 6),
            "delta_ci95": [round(x, 6) for x in paired_interval(a, b)],
            "share": None if share is None else round(share, 6),
            "share_ci95": [None if x is None else round(x, 6) for x in share_interval(a, b)],
            "p_randomization": round(paired_randomization(a, b), 5), "p_ttest": round(paired_t(a, b), 5)}
