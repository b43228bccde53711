"""Latency summaries (all timings in seconds in, milliseconds out)."""

from __future__ import annotations

import numpy as np


def latency_ms(samples_s) -> dict:
    a = np.asarray(list(samples_s), dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"mean_ms": None, "p50_ms": None, "p95_ms": None, "total_s": 0.0, "n": 0}
    return {"mean_ms": round(float(a.mean()), 3), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "total_s": round(float(a.sum()) / 1000.0, 4),
            "n": int(a.size)}
