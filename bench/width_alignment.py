"""What an MLP width that is not a multiple of 8 costs, and what zero-padding it at load wins back.

A width cut leaves MLPs of any width (self-slimming: 751–1148 channels; activation norms: 799 or 1075). The matrix
kernels run whole vector blocks, so a ragged width costs more than its channels. Two measurements, each interleaved
over rounds after a warm-up (order reversing every turn), medians:

1. One SwiGLU MLP (hidden `--hidden`, `--tokens` tokens) at each `--widths` value and at that width padded to the
   next multiple of `architecture.WIDTH_MULTIPLE`: ms per call.
2. With `--model` (a slimmed folder): the encoder as it loads now (padded) against the same weights unpadded, timed
   by `effir.speed` on SciFact documents and queries, with the unpadded model twice as the control pair.

    .venv/bin/python bench/width_alignment.py --threads 2
    .venv/bin/python bench/width_alignment.py --threads 2 --model runs/llm/rebuilt/smollm2-effir-2x-act
"""

from __future__ import annotations

import argparse
import statistics
import time


def mlp_times(widths: list[int], hidden: int, tokens: int, rounds: int) -> dict[int, float]:
    """width -> median seconds of one SwiGLU MLP call (random weights: speed depends on shapes alone)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    x = torch.randn(tokens, hidden)
    mlps = {w: (nn.Linear(hidden, w, bias=False), nn.Linear(hidden, w, bias=False), nn.Linear(w, hidden, bias=False))
            for w in widths}

    def call(w):
        gate, up, down = mlps[w]
        return down(nn.functional.silu(gate(x)) * up(x))

    times = {w: [] for w in widths}
    with torch.inference_mode():
        for w in widths:
            call(w)
        for r in range(rounds):
            for w in widths if r % 2 == 0 else widths[::-1]:
                t0 = time.perf_counter()
                call(w)
                times[w].append(time.perf_counter() - t0)
    return {w: statistics.median(t) for w, t in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", default="751,799,1075,1148", help="MLP widths, each timed against its padded width")
    ap.add_argument("--hidden", type=int, default=576, help="model width (SmolLM2-135M: 576)")
    ap.add_argument("--tokens", type=int, default=4096, help="tokens per call (16 documents of 256)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--model", default=None, help="a slimmed model folder: time it padded against unpadded")
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--model-rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from effir.core.device import configure_threads
    from effir.encoder.architecture import WIDTH_MULTIPLE

    print(f"{configure_threads(args.threads)} threads")
    pairs = [(w, -(-w // WIDTH_MULTIPLE) * WIDTH_MULTIPLE) for w in map(int, args.widths.split(","))]
    t = mlp_times(sorted({w for p in pairs for w in p}), args.hidden, args.tokens, args.rounds)
    print(f"one SwiGLU MLP, {args.tokens} tokens x {args.hidden}, median of {args.rounds} interleaved rounds")
    for w, padded in pairs:
        print(f"  width {w:5d}: {t[w] * 1e3:7.1f} ms   padded to {padded:5d}: {t[padded] * 1e3:7.1f} ms   "
              f"({t[w] / t[padded]:.2f}x)")
    if args.model:
        from effir import speed
        from effir.core.models import resolve
        from effir.encoder.model import Encoder, load_model

        spec = resolve(args.model)
        docs, queries = speed.timing_sample(args.dataset, args.docs, args.queries)

        def unpadded():
            net, tok = load_model(spec, "cpu")
            return Encoder(spec, device="cpu", model=net, tokenizer=tok)

        encoders = {"unpadded": unpadded(), "padded": Encoder(spec, device="cpu"), "unpadded-control": unpadded()}
        fig = speed.figures(speed.interleaved_timing(encoders, docs, queries, args.model_rounds), "unpadded",
                            len(docs))
        print(f"{spec.name}: {len(docs)} documents, {len(queries)} queries, {args.model_rounds} rounds; "
              "speedup over the unpadded model (min-max)")
        for name in ("padded", "unpadded-control"):
            print(f"  {name:17s} " + "  ".join(
                f"{task} {fig[name][f'{task}_speedup']:.2f}x ({fig[name][f'{task}_speedup_range'][0]:.2f}-"
                f"{fig[name][f'{task}_speedup_range'][1]:.2f})" for task in speed.TASKS))


if __name__ == "__main__":
    main()
