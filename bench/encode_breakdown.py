"""Where an encode's time goes: tokenising against the forward pass, per system, at several batch sizes.

`effir bench` times encoding end to end (tokenise, pad, forward, pool, copy back), which is what a user waits for.
When compression barely moves that figure (a GPU, where a 135M model's forward takes milliseconds), this says
whether the tokenizer or the forward pass holds the time, and what the compressed systems' forward pass alone
gains. Every system tokenises and runs the same texts, taking turns in an order that reverses from one unit to the
next, after a warm-up; each figure is the median over rounds, speedups the median of per-round ratios against the
first system (min–max beside it). The forward time includes padding, pooling and the copy of the vectors back to
the host, and waits for the device to finish (`torch.cuda.synchronize`).

`--parts` then splits the document forward pass (batches of the first --doc-batches size) by the model's parts:
every layer's attention sublayer, MLP sublayer and norms, the embeddings, and the rest (rotary tables, masks, residual
adds, pooling, padding, the copy back), timed by hooks around each part in passes of their own (the hooks' clock reads
would otherwise sit in the figures above). Beside each part's time: its speedup against the first system and its
analytic FLOP ratio (`info.flops_by_part` at the batches' median length), so a compressed system's realised ratio can
be traced to the parts that fall short of theirs. In a BERT layer the norms sit inside the attention and MLP outputs.

    .venv/bin/python bench/encode_breakdown.py --dataset ../shared/data/beir/scifact \\
        --systems smollm2-ft=runs/llm/rebuilt/smollm2-ft,smollm2-effir-2x=runs/llm/rebuilt/smollm2-effir-2x
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager


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


def part_of(child: str) -> str:
    """A layer's child module, by name (both families): which part of the layer it is."""
    if child in ("mlp", "intermediate", "output"):
        return "mlp"
    if child in ("self_attn", "attention"):
        return "attention"
    return "norm" if "norm" in child.lower() else "other"


@contextmanager
def timed_parts(model, device: str):
    """Seconds spent in each part of `model` while the block runs: {"attention" | "mlp" | "norm" | "embedding": s}."""
    from torch import nn

    from effir.encoder import architecture

    spent, handles = defaultdict(float), []

    def watch(module, part: str) -> None:
        start = {}

        def before(*_):
            _sync(device)
            start["t"] = time.perf_counter()

        def after(*_):
            _sync(device)
            spent[part] += time.perf_counter() - start["t"]

        handles.extend([module.register_forward_pre_hook(before), module.register_forward_hook(after)])

    for layer in architecture.layers(model):
        for name, child in layer.named_children():
            if part_of(name) != "other":
                watch(child, part_of(name))
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) or (name.rpartition(".")[2] == "norm" and ".layers." not in f".{name}."):
            watch(module, "embedding" if isinstance(module, nn.Embedding) else "norm")
    try:
        yield spent
    finally:
        for h in handles:
            h.remove()


PARTS = ("attention", "mlp", "norm", "embedding", "other")


def part_times(encoders: dict, docs: list[str], batch: int, rounds: int) -> dict:
    """name -> part -> [s per round] over the documents' forward passes in batches of `batch`; "forward" the whole
    pass and "other" what no part's hooks saw. The systems take turns as in `timed_units`."""
    names = list(encoders)
    ids = {n: encoders[n].tokenize(docs, "passage") for n in names}
    times = {n: {p: [] for p in ("forward",) + PARTS} for n in names}
    for n in names:  # warm-up
        encoders[n].forward_ids(ids[n][:batch])
    turn = 0
    for _ in range(rounds):
        spent = {n: defaultdict(float) for n in names}
        for i in range(0, len(docs), batch):
            for n in names if turn % 2 == 0 else reversed(names):
                enc = encoders[n]
                with timed_parts(enc.model, enc.device) as parts:
                    t0 = time.perf_counter()
                    enc.forward_ids(ids[n][i:i + batch]).cpu()
                    _sync(enc.device)
                    spent[n]["forward"] += time.perf_counter() - t0
                for p, s in parts.items():
                    spent[n][p] += s
                turn += 1
        for n in names:
            spent[n]["other"] = spent[n]["forward"] - sum(spent[n][p] for p in PARTS[:-1])
            for p in times[n]:
                times[n][p].append(spent[n][p])
    return times


def part_flops(model, seq_len: int) -> dict[str, int]:
    """Analytic FLOPs per token by part: attention (projections and scores) and MLP, summed over layers."""
    from effir.compression.info import flops_by_part

    layers = flops_by_part(model, seq_len).values()
    return {"attention": sum(p["attn_qo"] + p["attn_kv"] + p["attn_scores"] for p in layers),
            "mlp": sum(p["mlp"] for p in layers)}


def part_summary(times: dict, flops: dict) -> dict:
    """Per system and part: median seconds, share of the forward pass, speedup against the first system, and for the
    parts the FLOP model counts, their share of its FLOPs and the analytic ratio."""
    from effir.speed import speedup

    reference = next(iter(times))
    out = {}
    for name, parts in times.items():
        forward = statistics.median(parts["forward"])
        out[name] = {}
        for part, seconds in parts.items():
            row = {"seconds": round(statistics.median(seconds), 4),
                   "share": round(statistics.median(seconds) / forward, 3)}
            if min(times[reference][part]) > 0 and min(seconds) > 0:
                row["speedup"] = speedup(times[reference][part], seconds)
            if part in flops[name]:  # None: the part is gone (every MLP dropped)
                row["flop_share"] = round(flops[name][part] / sum(flops[name].values()), 3)
                row["flop_ratio"] = round(flops[reference][part] / flops[name][part], 3) if flops[name][part] else None
            out[name][part] = row
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="BEIR folder the documents and queries are sampled from")
    ap.add_argument("--systems", required=True,
                    help="comma-separated NAME=FOLDER[@DTYPE] (DTYPE as `effir encode --dtype`, e.g. bfloat16); the "
                         "first is the reference")
    ap.add_argument("--docs", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--doc-batches", default="32,256")
    ap.add_argument("--query-batches", default="1,32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--parts", action="store_true",
                    help="also split the document forward pass by part (attention, MLP, norms, embeddings, rest)")
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
        folder, _, dtype = folder.partition("@")
        encoders[name or folder] = Encoder(resolve(folder), dtype=dtype or None)
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
    result = {"machine": describe_machine(), "device": device, "docs": len(docs), "queries": len(queries),
              "rounds": args.rounds, "figures": figures, "seconds": times}
    if args.parts:
        batch = int(args.doc_batches.split(",")[0])
        seconds = part_times(encoders, docs, batch, args.rounds)
        first = next(iter(encoders.values()))
        seq_len = int(statistics.median(len(x) for x in first.tokenize(docs, "passage")))
        parts = part_summary(seconds, {n: part_flops(e.model, seq_len) for n, e in encoders.items()})
        print(f"\ndocument forward pass by part (batches of {batch}, median length {seq_len} tokens, "
              f"{args.rounds} rounds, hooks on)")
        print(f"{'system':24} {'part':10} {'seconds':>8} {'share':>6} {'speedup':>20} {'FLOP share':>10} "
              f"{'FLOP ratio':>10}")
        for name, rows in parts.items():
            for part, r in rows.items():
                sp = r.get("speedup")
                sp = f"{sp['median']:7.2f}x ({sp['min']:.2f}-{sp['max']:.2f})" if sp else "-"
                ratio = "-" if "flop_ratio" not in r else "gone" if r["flop_ratio"] is None else f"{r['flop_ratio']:.2f}x"
                share = f"{r['flop_share']:.1%}" if "flop_share" in r else "-"
                print(f"{name:24} {part:10} {r['seconds']:8.3f} {r['share']:6.1%} {sp:>20} {share:>10} {ratio:>10}")
        result.update(parts={"batch": batch, "median_tokens": seq_len, "figures": parts, "seconds": seconds})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
