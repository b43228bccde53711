"""How a model separates SciFact *train* pairs (no test data): in-batch top-1, score spread, positive gap.

N train queries and one positive each are encoded; with the score matrix S = Q·Pᵀ (L2-normalised vectors) it prints
in-batch top-1 accuracy (chance 1/N), the standard deviation of S, the mean positive score minus the mean score, and
the mean passage–passage and query–query cosines. A collapse (every text one vector) shows as a spread near 0 with top-1 at chance.

Without --checkpoint it probes the base model under three poolings (last token with EOS as the EffiR script pools,
last token without EOS, mean); with --checkpoint (a `checkpoint.pt` of `effir compress train --lora`) it probes the
model trained to that step, pooled as it was trained.

    .venv/bin/python bench/probe_pairs.py --dataset ../shared/data/beir/scifact --pairs 64
    .venv/bin/python bench/probe_pairs.py --dataset ../shared/data/beir/scifact --pairs 24 \\
        --checkpoint runs/llm/smollm2-ft.work/checkpoint.pt --lora-r 16 --lora-alpha 32
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace

import torch


def probe(encoder, queries: list[str], passages: list[str]) -> dict:
    q, _ = encoder.encode(queries, side="query")
    p, _ = encoder.encode(passages, side="passage")
    q, p = torch.from_numpy(q), torch.from_numpy(p)
    s = q @ p.T
    return {"top1": float((s.argmax(1) == torch.arange(len(q))).float().mean()), "mean": float(s.mean()),
            "std": float(s.std()), "gap": float(s.diag().mean() - s.mean()), "pp_cos": float((p @ p.T).mean()),
            "qq_cos": float((q @ q.T).mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--passage-max-length", type=int, default=128, help="as in training")
    ap.add_argument("--checkpoint", default=None, help="a LoRA training checkpoint.pt to probe")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from effir.compression.train import TrainConfig, wrap_lora
    from effir.core.data import BeirDataset
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import Encoder, load_model

    configure_threads(args.threads)
    ds = BeirDataset(args.dataset)
    corpus = {d.docid: d.contents for d in ds.corpus()}
    queries, qrels = ds.queries(), ds.qrels("train")
    chosen = random.Random(args.seed).sample(sorted(qrels), args.pairs)
    texts_q = [queries[q] for q in chosen]
    texts_p = [corpus[sorted(qrels[q])[0]] for q in chosen]

    spec = replace(resolve(args.model), passage_max_length=args.passage_max_length)
    net, tok = load_model(spec, device="cpu", dtype="float32")
    if args.checkpoint:
        ckpt = torch.load(args.checkpoint, weights_only=False)
        net = wrap_lora(net, TrainConfig(lora=True, lora_r=args.lora_r, lora_alpha=args.lora_alpha))
        params = dict(net.named_parameters())
        with torch.no_grad():
            for name, tensor in ckpt["trainable"].items():
                params[name].copy_(tensor)
        variants = {f"trained to step {ckpt['step']}": spec}
    else:
        variants = {"last token, EOS appended": spec, "last token, no EOS": replace(spec, append_eos=False),
                    "mean, EOS appended": replace(spec, pooling="mean")}
    net.eval()
    print(f"{args.model}: {args.pairs} SciFact train pairs (seed {args.seed}), passages cut at "
          f"{args.passage_max_length} tokens; chance top-1 {1 / args.pairs:.3f}")
    for name, variant in variants.items():
        r = probe(Encoder(variant, device="cpu", model=net, tokenizer=tok), texts_q, texts_p)
        print(f"  {name:<28} top-1 {r['top1']:.2f}  score mean {r['mean']:.4f}  spread (std) {r['std']:.4f}  "
              f"positive gap {r['gap']:+.4f}  passage-passage cos {r['pp_cos']:.3f}  query-query cos {r['qq_cos']:.3f}")


if __name__ == "__main__":
    main()
