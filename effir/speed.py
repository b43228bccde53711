"""Encoding speed as a ratio, measured the one way that survives a noisy shared machine.

Every system encodes the same document sample (in batches of 32), the same queries one at a time (online latency)
and the same queries in batches of 32 (offline throughput). After a warm-up, the systems take turns on every unit
of work — each document batch, each single query, each query batch — in an order that reverses from one unit to the
next (A B C, C B A, ...), so a burst of load from the shared machine falls on every system alike instead of on
whichever was timed during it. A round sums each system's units per task; a system's speedup over the reference is
the median over rounds of the per-round ratio t_ref / t_system, shown with its min–max over rounds. A control pair
(the reference loaded twice and timed as two systems) must read 1.00 ± 0.05, or the figures beside it are not to
be trusted.
"""

from __future__ import annotations

import logging
import statistics
import time

logger = logging.getLogger(__name__)

TASKS = ("doc", "query", "query_batch")
CONTROL_TOLERANCE = 0.05
ORDER = ("the systems take turns on every document batch, single query and query batch, the order reversing from "
         "one to the next")


def _units(docs: list[str], queries: list[str], doc_batch: int, query_batch: int) -> list[tuple[str, list[str], str]]:
    """The work timed in turns: (task, texts, side) for each document batch, single query and query batch."""
    return ([("doc", docs[i:i + doc_batch], "passage") for i in range(0, len(docs), doc_batch)]
            + [("query", [q], "query") for q in queries]
            + [("query_batch", queries[i:i + query_batch], "query") for i in range(0, len(queries), query_batch)])


def interleaved_timing(encoders: dict, docs: list[str], queries: list[str], rounds: int, query_batch: int = 32,
                       doc_batch: int = 32) -> dict[str, dict[str, list[float]]]:
    """name -> {"doc" | "query" | "query_batch": seconds per round}."""
    names = list(encoders)
    times = {name: {task: [] for task in TASKS} for name in names}
    units = _units(docs, queries, doc_batch, query_batch)
    for enc in encoders.values():  # warm-up: allocator, kernels, caches
        enc.encode(docs[: max(1, len(docs) // 8)])
        enc.encode(queries[:query_batch], side="query")
    turn = 0
    for r in range(rounds):
        spent = {name: dict.fromkeys(TASKS, 0.0) for name in names}
        for task, texts, side in units:
            for name in names if turn % 2 == 0 else reversed(names):
                t0 = time.perf_counter()
                encoders[name].encode(texts, side=side)
                spent[name][task] += time.perf_counter() - t0
            turn += 1
        for name in names:
            for task in TASKS:
                times[name][task].append(spent[name][task])
        logger.info("timing round %d/%d: %s", r + 1, rounds,
                    ", ".join(f"{n} {times[n]['doc'][-1]:.1f}s" for n in names))
    return times


def speedup(reference: list[float], system: list[float]) -> dict:
    """Median and min–max over rounds of t_reference / t_system (rounds paired by position)."""
    ratios = [a / b for a, b in zip(reference, system)]
    return {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
            "max": round(max(ratios), 3)}


def figures(times: dict, reference: str | None, n_docs: int) -> dict[str, dict]:
    """Per system: median seconds per task, docs/s, and speedups with spread against `reference`."""
    out = {}
    for name, t in times.items():
        row = {f"{task}_encode_s": round(statistics.median(t[task]), 4) for task in TASKS}
        row["docs_per_s"] = round(n_docs / statistics.median(t["doc"]), 2)
        # significant digits, not decimals: a tiny model's round takes ~1 ms, and 4 decimals would lose its ratio
        row["rounds_s"] = {task: [float(f"{x:.6g}") for x in t[task]] for task in TASKS}
        if reference in times:
            for task in TASKS:
                s = speedup(times[reference][task], t[task])
                row[f"{task}_speedup"], row[f"{task}_speedup_range"] = s["median"], [s["min"], s["max"]]
        out[name] = row
    return out


def control_verdict(row: dict) -> dict:
    """Whether the control pair reads 1.00 ± CONTROL_TOLERANCE on every task."""
    ok = all(abs(row[f"{task}_speedup"] - 1.0) <= CONTROL_TOLERANCE for task in TASKS)
    if not ok:
        logger.warning("control pair outside 1.00 ± %.2f: %s; speed figures of this run are not reliable",
                       CONTROL_TOLERANCE, {t: row[f"{t}_speedup"] for t in TASKS})
    return {"ok": ok, "tolerance": CONTROL_TOLERANCE, **{task: row[f"{task}_speedup"] for task in TASKS}}
