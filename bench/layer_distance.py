"""How far a cut model's token states lie from its parent's, layer by layer: the figure `--distill-loss layers`
trains down, measured on documents rather than on training batches.

Encodes N fixed SciFact documents (`compress export`'s probe set, 256 tokens, the encoder's pooling and prefixes)
with the parent and each model, and prints the embedding's mean 1 − cos to the parent's, the layer term of
`compression.train.layer_distillation` (mean over layers and tokens of 1 − cos between standardised states), and
that term for every third layer; then the same without the standardisation (`raw`), and for the teacher each
layer's mean state length and its three largest channels by mean |h|: what the standardisation is for.

    .venv/bin/python bench/layer_distance.py --teacher runs/llm/rebuilt/smollm2-ft-3k \\
        --models runs/llm/smollm2-effir-2x-gact-distilled-3k/2-slim,runs/llm/rebuilt/smollm2-effir-2x-gact-distilled-3k
"""

from __future__ import annotations

import argparse
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True, help="the parent model folder")
    ap.add_argument("--models", required=True, help="comma-separated model folders cut from it")
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import torch

    from effir.compression.cli import probe_documents
    from effir.compression.train import layer_distillation
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import Encoder

    configure_threads(args.threads)
    _, texts = probe_documents(args.dataset, args.docs)
    teacher = Encoder(resolve(args.teacher), device="cpu")
    ids = teacher.tokenize(texts, "passage")
    batches = [ids[i:i + args.batch] for i in range(0, len(ids), args.batch)]
    targets = [teacher.forward_states(b) for b in batches]
    real = [(states, mask.bool()) for _, states, mask in targets]
    tokens = [torch.cat([states[layer][m] for states, m in real]).float() for layer in range(len(real[0][0]))]
    largest = [t.abs().mean(0).topk(3) for t in tokens]
    massive = [{"length": round(t.norm(dim=-1).mean().item(), 1), "channels": top.indices.tolist(),
                "mean_abs": [round(x, 1) for x in top.values.tolist()]} for t, top in zip(tokens, largest)]
    print("teacher: state length and largest channels, layers 1, 4, …",
          "; ".join(f"{m['length']:.0f} {m['channels']} {m['mean_abs']}" for m in massive[::3]))
    rows = []
    for folder in args.models.split(","):
        model = Encoder(resolve(folder), device="cpu")
        embedding, per_layer, raw = [], [], []
        for b, (vectors, states, mask) in zip(batches, targets):
            v, s, _ = model.forward_states(b)
            embedding.append(1 - (v * vectors).sum(-1))
            per_layer.append(torch.stack([layer_distillation((a,), (t,), mask) for a, t in zip(s, states)]))
            m = mask.bool()
            raw.append(torch.stack([(1 - torch.cosine_similarity(a[m], t[m], dim=-1)).mean()
                                    for a, t in zip(s, states)]))
        per_layer, raw = torch.stack(per_layer).mean(0), torch.stack(raw).mean(0)
        rows.append({"model": folder, "embedding_1_minus_cos": round(torch.cat(embedding).mean().item(), 4),
                     "layers": round(per_layer.mean().item(), 4),
                     "per_layer": [round(x, 4) for x in per_layer.tolist()],
                     "raw_per_layer": [round(x, 4) for x in raw.tolist()]})
        print(f"{folder}\n  embedding 1 − cos {rows[-1]['embedding_1_minus_cos']:.3f}"
              f"   layer term {rows[-1]['layers']:.3f}"
              f"   layers 1, 4, … {' '.join(f'{x:.2f}' for x in rows[-1]['per_layer'][::3])}"
              f"   raw {' '.join(f'{x:.2f}' for x in rows[-1]['raw_per_layer'][::3])}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"teacher": args.teacher, "docs": args.docs, "teacher_states": massive, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
