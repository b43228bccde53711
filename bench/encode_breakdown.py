"""Where an encode's time goes: tokenising against the forward pass, per system, at several batch sizes.

`effir bench` times encoding end to end (tokenise, pad, forward, pool, copy back), which is what a user waits for.
When compression barely moves that figure (a GPU, where a 135M model's forward takes milliseconds), this says
whether the tokenizer or the forward pass holds the time, and what the compressed systems' forward pass alone
gains. Every system tokenises and runs the same texts, taking turns in an order that reverses from one unit to the
next, after a warm-up; each figure is the median over rounds, speedups the median of per-round ratios against the
first system (min–max beside it). The forward time includes padding, pooling and the copy of the vectors back to
the host, and waits for the device to finish (`torch.cuda.synchronize`).

    .venv/bin/python bench/encode_breakdown.py --dataset ../shared/data/beir/scifact \\
        --systems smollm2-ft=runs/llm/rebuilt/smollm2-ft,smollm2-effir-2x=runs/llm/rebuilt/smollm2-effir-2x
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed_units(encoders: dict, docs: list[str], queries: list[str], doc_batches: list[int], query_batches: list[int],
                rounds: int) -> dict:
    """name -> task -> {"tokenize": [s per round], "forward": [s per round]}; a task is `doc@B` or `query@B`."""
    tasks = [(f"doc@{b}", docs, "passage", b) for b in doc_batches] + \
            [(f"query@{b}", queries, "query", b) for b in query_batches]
    names = list(encoders)
    times = {n: {t[0]: {"tokenize": [], "forward": []} for t in tasks} for n in names}
    for enc in encoders.values():  # warm-up: kernels, allocator, tokenizer caches
        for _, texts, side, b in tasks:
            enc.forward_ids(enc.tokenize(texts[:b], side))
        _sync(enc.device)
    turn = 0
    for _ in range(rounds):
        for task, texts, side, b in tasks:
            spent = {n: {"tokenize": 0.0, "forward": 0.0} for n in names}
            for i in range(0, len(texts), b):
                for name in names if turn % 2 == 0 else reversed(names):
                    enc = encoders[name]
                    t0 = time.perf_counter()
                    ids = enc.tokenize(texts[i:i + b], side)
                    t1 = time.perf_counter()
                    enc.forward_ids(ids).cpu()
                    _sync(enc.device)
                    spent[name]["tokenize"] += t1 - t0
                    spent[name]["forward"] += time.perf_counter() - t1
                turn += 1
            for name in names:
                for part in ("tokenize", "forward"):
                    times[name][task][part].append(spent[name][part])
    return times


def summary(times: dict, n_texts: dict) -> dict:
    """Per system and task: texts/s of the forward pass, the tokenizer's share of the time, and speedups of the
    forward pass and of both together against the first system."""
    from effir.speed import speedup

    reference = next(iter(times))
    out = {}
    for name, tasks in times.items():
        out[name] = {}
        for task, parts in tasks.items():
            total = [a + b for a, b in zip(parts["tokenize"], parts["forward"])]
            ref = times[reference][task]
            ref_total = [a + b for a, b in zip(ref["tokenize"], ref["forward"])]
            out[name][task] = {
                "forward_texts_per_s": round(n_texts[task.split("@")[0]] / statistics.median(parts["forward"]), 1),
                "tokenize_share": round(statistics.median(parts["tokenize"]) / statistics.median(total), 3),
                "forward_speedup": speedup(ref["forward"], parts["forward"]),
                "total_speedup": speedup(ref_total, total),
            }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="BEIR folder the documents and queries are sampled from")
    ap.add_argument("--systems", required=True, help="comma-separated NAME=FOLDER; the first is the reference")
    ap.add_argument("--docs", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--doc-batches", default="32,256")
    ap.add_argument("--query-batches", default="1,32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the figures and the machine as JSON here")
    args = ap.parse_args()

    from effir.core.device import configure_threads, describe_machine
    from effir.core.models import resolve
    from effir.encoder.model import Encoder
    from effir.speed import timing_sample

    configure_threads(args.threads)
    docs, queries = timing_sample(args.dataset, args.docs, args.queries)
    encoders = {}
    for item in args.systems.split(","):
        name, _, folder = item.rpartition("=")
        encoders[name or folder] = Encoder(resolve(folder))
    times = timed_units(encoders, docs, queries, [int(b) for b in args.doc_batches.split(",")],
                        [int(b) for b in args.query_batches.split(",")], args.rounds)
    figures = summary(times, {"doc": len(docs), "query": len(queries)})
    device = next(iter(encoders.values())).device
    print(f"{len(docs)} documents, {len(queries)} queries, {args.rounds} rounds, device {device}")
    print(f"{'system':24} {'task':10} {'fwd texts/s':>12} {'tok share':>9} {'fwd speedup':>20} {'total speedup':>20}")
    for name, tasks in figures.items():
        for task, f in tasks.items():
            fs, ts = f["forward_speedup"], f["total_speedup"]
            print(f"{name:24} {task:10} {f['forward_texts_per_s']:12.1f} {f['tokenize_share']:9.0%} "
                  f"{fs['median']:7.2f}x ({fs['min']:.2f}-{fs['max']:.2f}) {ts['median']:7.2f}x "
                  f"({ts['min']:.2f}-{ts['max']:.2f})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": describe_machine(), "device": device, "docs": len(docs), "queries": len(queries),
                       "rounds": args.rounds, "figures": figures, "seconds": times}, f, indent=1)


if __name__ == "__main__":
    main()
