"""Encoding speed as a ratio, measured the one way that survives a noisy shared machine.

Every system encodes the same document sample (in batches of 32), the same queries one at a time (online latency)
and the same queries in batches of 32 (offline throughput). After a warm-up, the systems take turns on every unit
of work — each document batch, each single query, each query batch — in an order that reverses from one unit to the
next (A B C, C B A, ...), so a burst of load from the shared machine falls on every system alike instead of on
whichever was timed during it. A round sums each system's units per task; a system's speedup over the reference is
the median over rounds of the per-round ratio t_ref / t_system, shown with its min–max over rounds. A control pair
(the reference loaded twice and timed as two systems) must read 1.00 ± 0.05, or the figures beside it are not to
be trusted.

Many systems are timed in groups (`timed_in_groups`): with 20+ models in one run, one pass over a document batch
takes minutes, so the reference and a system far from it in the order meet different load from the machine, and
the control pair read 0.92× and 1.14× on documents in two such runs. Each group of at most `group_size` systems is
its own interleaved run with the reference and the control, and its speedups are against that group's reference.
A finished group's times are kept, so a bench stopped part-way through its timing resumes at the first group not
finished, on the same machine with the same systems, sample and settings (`_kept_group`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

logger = logging.getLogger(__name__)

TASKS = ("doc", "query", "query_batch")
CONTROL_TOLERANCE = 0.05
GROUP_SIZE = 4  # systems per timing group besides the reference and the control: runs of that size held the control
ORDER = ("the systems take turns on every document batch, single query and query batch, the order reversing from "
         "one to the next")


def timing_sample(dataset: str, n_docs: int, n_queries: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """The documents and queries every system is timed on: a seeded sample of the BEIR folder's corpus and queries."""
    import random

    from effir.core.data import BeirDataset

    ds = BeirDataset(dataset)
    rng = random.Random(seed)
    docs = [d.contents for d in rng.sample(list(ds.corpus()), min(n_docs, ds.corpus().count))]
    return docs, rng.sample(list(ds.queries().values()), min(n_queries, len(ds.queries())))


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
    # warm-up on one unit of each kind, at the shapes timed: the process's first full document batch is slower, and
    # in the first timed unit it fell on the reference (reports/timing-warm-up-2026-12-06/)
    for enc in encoders.values():
        enc.encode(docs[:doc_batch])
        enc.encode(queries[:1], side="query")
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


def groups(names: list[str], size: int) -> list[list[str]]:
    """`names` in order, split into the fewest groups of at most `size`, their sizes differing by one at most
    (the larger first)."""
    if size < 1:
        raise ValueError(f"group size {size}: must be at least 1")
    count = max(1, -(-len(names) // size))
    small, larger = divmod(len(names), count)
    out, start = [], 0
    for i in range(count):
        end = start + small + (i < larger)
        out.append(names[start:end])
        start = end
    return out


@functools.cache
def _code_digest() -> str:
    """The code that loads, runs and times the encoders (effir's own, core, encoder, compression): kept times are
    stale once any of it changes."""
    import importlib

    h = hashlib.sha256()
    for package in ("effir", "effir.core", "effir.encoder", "effir.compression"):
        for folder in importlib.import_module(package).__path__:
            for file in sorted(Path(folder).glob("*.py")):
                h.update(file.read_bytes())
    return h.hexdigest()


def _group_key(identities: dict[str, str], docs: list[str], queries: list[str], rounds: int, query_batch: int) -> dict:
    """What a group's times depend on: its systems (name and model fingerprint, in the order timed), the sample,
    the settings, the machine, its threads and the code (`_code_digest`)."""
    from effir.core.device import describe_machine

    machine = describe_machine()
    texts = hashlib.sha256(json.dumps([docs, queries]).encode()).hexdigest()
    # lists, not tuples: the key is compared with one read back from JSON
    return {"systems": [[name, fp] for name, fp in identities.items()], "texts": texts, "rounds": rounds,
            "query_batch": query_batch, "code": _code_digest(),
            "machine": {k: machine[k] for k in ("cpu", "cores", "threads", "gpu", "torch", "transformers")}}


def _kept_group(timed: dict, identities: dict[str, str] | None, kept: Path | None, docs: list[str],
                queries: list[str], rounds: int, query_batch: int) -> tuple[dict, str, bool]:
    """(times, when they were measured, whether they were kept from an earlier run): a group is a stage of `kept`
    (`pipeline.Stages`), read back when it was finished with the same key, else timed now and recorded once whole."""
    from effir.pipeline import Stages

    stages = Stages(Path(kept)) if kept is not None and identities is not None else None
    if stages is not None:
        name, key = "timing " + ", ".join(identities), _group_key(identities, docs, queries, rounds, query_batch)
        rec = stages.done(name, key)
        if rec is not None:
            logger.info("%s: kept from %s (timed %s), not timed again", name, stages.path, rec["timed_at"])
            return rec["times"], rec["timed_at"], True
    times = interleaved_timing(timed, docs, queries, rounds, query_batch)
    timed_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if stages is not None:
        stages.record(name, key, times=times, timed_at=timed_at)
    return times, timed_at, False


def timed_in_groups(encoders: dict, reference: str, docs: list[str], queries: list[str], rounds: int,
                    query_batch: int = 32, group_size: int = GROUP_SIZE, control=None,
                    fingerprints: dict[str, str] | None = None, kept: Path | None = None) -> tuple[dict, list[dict]]:
    """Speed figures per system, each group of systems timed in its own interleaved run with the reference (first)
    and the control (last, the farthest from the reference in every pass): (figures by name, the groups as
    {"group", "systems", "control": verdict or None, "timed_at", "kept"}). The reference's own figures pool its
    rounds of every group. With `kept` (a folder) and `fingerprints` (each encoder's model fingerprint), each
    finished group's times are written there, and a rerun reads back the groups it finds instead of timing them."""
    others = [name for name in encoders if name != reference]
    out, timing_groups, reference_times = {}, [], {task: [] for task in TASKS}
    control_name = f"{reference}-control"
    for number, members in enumerate(groups(others, group_size), start=1):
        timed = {reference: encoders[reference], **{m: encoders[m] for m in members}}
        if control is not None:
            timed[control_name] = control
        logger.info("timing group %d: %s", number, ", ".join(timed))
        identities = ({name: fingerprints[reference if name == control_name else name] for name in timed}
                      if fingerprints is not None else None)
        times, timed_at, was_kept = _kept_group(timed, identities, kept, docs, queries, rounds, query_batch)
        group_figures = figures(times, reference, len(docs))
        for m in members:
            out[m] = {**group_figures[m], "timing_group": number}
        timing_groups.append({"group": number, "systems": members,
                              "control": control_verdict(group_figures[control_name]) if control is not None else None,
                              "timed_at": timed_at, "kept": was_kept})
        for task in TASKS:
            reference_times[task] += times[reference][task]
    out[reference] = figures({reference: reference_times}, reference, len(docs))[reference]
    return out, timing_groups


def overall_control(timing_groups: list[dict]) -> dict | None:
    """The run's control: ok only if every group's is; per task the reading farthest from 1.00."""
    verdicts = [g["control"] for g in timing_groups if g["control"]]
    if not verdicts:
        return None
    worst = {task: max((v[task] for v in verdicts), key=lambda x: abs(x - 1.0)) for task in TASKS}
    return {"ok": all(v["ok"] for v in verdicts), "tolerance": CONTROL_TOLERANCE, **worst}
