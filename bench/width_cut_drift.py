"""What a width cut does to the model it cuts, before any training: embedding cosine against the uncut model.

Encodes the first N documents of a corpus (as the encoder does: pooling, prefixes, 256 tokens) with a reference
model (e.g. the d15 folder a recipe made, `runs/llm/smollm2-effir/1-drop`) and with each width cut of it (its
`2-slim` from gate training, or `effir compress slim --slim-by activation` of the same folder), and prints the
mean and lowest cosine of each document's embedding to the reference's, and the kept MLP width.

    .venv/bin/python bench/width_cut_drift.py --reference runs/llm/smollm2-effir/1-drop \\
        --models runs/llm/smollm2-effir/2-slim,runs/llm/smollm2-effir-act/2-slim
"""

from __future__ import annotations

import argparse
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="model folder the cuts were made from")
    ap.add_argument("--models", required=True, help="comma-separated model folders (width cuts of the reference)")
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import numpy as np

    from effir.compression.cli import probe_documents
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import Encoder

    configure_threads(args.threads)
    _, texts = probe_documents(args.dataset, args.docs)
    reference = Encoder(resolve(args.reference), device="cpu").encode(texts)[0]
    rows = []
    for folder in args.models.split(","):
        spec = resolve(folder)
        vectors = Encoder(spec, device="cpu").encode(texts)[0]
        cos = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
        widths = sorted(spec.mlp_widths.values())
        rows.append({"model": folder, "mean_cos": round(float(cos.mean()), 4), "min_cos": round(float(cos.min()), 4),
                     "mlp_width_total": sum(widths), "mlp_width_range": [widths[0], widths[-1]] if widths else None})
        print(f"{folder}: cosine to {args.reference} mean {rows[-1]['mean_cos']:.4f}, lowest "
              f"{rows[-1]['min_cos']:.4f}; MLP widths {rows[-1]['mlp_width_range']} (total {sum(widths)})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"reference": args.reference, "docs": len(texts), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
