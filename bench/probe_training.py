"""Does a pooling / learning-rate setting learn at all? A cheap look before an hour-long training run.

Trains LoRA (r 16, α 32, every projection; every weight with --full) with the project's `info_nce` (in-batch
negatives) on SciFact *train* pairs (no test data) at a constant learning rate, and prints, per step, the in-batch
top-1 of the batch *before* the update (chance 1/batch) and the spread of its scores. With `--pool 0` the same
`--batch` pairs come every step (can it memorise?); with `--pool N` each step draws a fresh batch from N pairs, so
top-1 measures what the model has learned beyond the pairs it saw. A collapse shows as the spread falling towards 0
with top-1 at chance.

    .venv/bin/python bench/probe_training.py --pool 500 --steps 40 --lr 3e-4 --pooling last
    .venv/bin/python bench/probe_training.py --pool 500 --steps 40 --lr 3e-4 --pooling mean
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8, help="pairs per step")
    ap.add_argument("--pool", type=int, default=500, help="draw each batch from this many pairs (0: one fixed batch)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--pooling", default=None, help="override the model's pooling (last, mean)")
    ap.add_argument("--full", action="store_true", help="train every weight instead of LoRA")
    ap.add_argument("--passage-max-length", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()

    import torch

    from effir.compression.train import TrainConfig, batch_figures, info_nce, wrap_lora
    from effir.core.data import BeirDataset
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import embed, load_model, tokenize

    configure_threads(args.threads)
    torch.manual_seed(0)
    ds = BeirDataset(args.dataset)
    corpus = {d.docid: d.contents for d in ds.corpus()}
    queries, qrels = ds.queries(), ds.qrels("train")
    chosen = random.Random(args.seed).sample(sorted(qrels), max(args.batch, args.pool))
    spec = resolve(args.model, pooling=args.pooling)
    spec = replace(spec, passage_max_length=args.passage_max_length)
    net, tok = load_model(spec, device="cpu", dtype="float32")
    if not args.full:
        net = wrap_lora(net, TrainConfig(lora=True, lora_r=16, lora_alpha=32))
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    q_ids = tokenize(tok, spec, [queries[q] for q in chosen], "query")
    p_ids = tokenize(tok, spec, [corpus[min(qrels[q])] for q in chosen], "passage")
    rng = random.Random(0)
    net.train()
    print(f"{args.model}, {'full fine-tuning' if args.full else 'LoRA'}, pooling {spec.pooling}, lr {args.lr}, "
          f"τ {args.temperature}, batch {args.batch} "
          f"({'fresh from ' + str(args.pool) + ' pairs' if args.pool else 'the same pairs'} each step); "
          f"chance top-1 {1 / args.batch:.3f}")
    top1 = []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        rows = rng.sample(range(len(q_ids)), args.batch) if args.pool else list(range(args.batch))
        q = embed(net, [q_ids[i] for i in rows], tok.pad_token_id, spec, "cpu")
        p = embed(net, [p_ids[i] for i in rows], tok.pad_token_id, spec, "cpu")
        loss = info_nce(q, p, args.temperature)
        figures = batch_figures(q, p)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        top1.append(figures["acc"])
        print(f"step {step:3d}  loss {loss.item():.3f}  top-1 {figures['acc']:.3f}  spread {figures['score_std']:.4f}"
              f"  {time.perf_counter() - t0:.1f}s", flush=True)
    quarter = max(1, len(top1) // 4)
    print(f"mean top-1: first {quarter} steps {statistics.mean(top1[:quarter]):.3f}, "
          f"last {quarter} steps {statistics.mean(top1[-quarter:]):.3f}")


if __name__ == "__main__":
    main()
