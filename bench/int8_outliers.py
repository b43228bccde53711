"""Why dynamic int8 hurts an LLM encoder: massive activations, and what keeping their linears in fp32 buys.

For a model folder: each block linear's input outlier ratio on calibration texts (`quantize.outlier_ratios`: the
largest |x| over tokens / the median token's largest |x|), the worst of them, and the cosine between fp32 and int8
embeddings of the first SciFact documents for: every linear int8 (per-tensor weight scales, as `int8-dynamic`),
per-channel weight scales, per-channel with the linears above each ratio kept fp32 (`--keep-outliers R`), and
`int8-token` (per-token activation scales), alone and with the linears above 20 kept fp32.
One-thread CPU, a few minutes for SmolLM2.

    .venv/bin/python bench/int8_outliers.py --model runs/llm/rebuilt/smollm2-ft
"""

from __future__ import annotations

import argparse
import copy
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--calibration", type=int, default=64, help="corpus texts the ratios are measured on")
    ap.add_argument("--docs", type=int, default=32, help="first corpus documents whose embeddings are compared")
    ap.add_argument("--ratios", default="5,20,100")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from effir.compression.cli import probe_documents
    from effir.compression.quantize import outlier_ratios, quantize
    from effir.compression.steps import calibration_texts
    from effir.core.models import resolve
    from effir.encoder.model import Encoder, load_model

    spec = resolve(args.model)
    model, tok = load_model(spec, device="cpu", dtype="float32")
    _, docs = probe_documents(args.dataset, args.docs)
    reference = Encoder(spec, device="cpu", model=model, tokenizer=tok).encode(docs)[0]
    ratios = outlier_ratios(model, tok, calibration_texts(args.dataset, None, args.calibration), spec=spec)

    def cosine(per_channel: bool, fp32=(), method="int8-dynamic") -> dict:
        q = quantize(copy.deepcopy(model), method, "cpu", per_channel=per_channel, fp32_linears=fp32)
        cos = (Encoder(spec, device="cpu", model=q, tokenizer=tok).encode(docs)[0] * reference).sum(1)
        return {"fp32_linears": len(fp32), "cos_mean": round(float(cos.mean()), 4),
                "cos_min": round(float(cos.min()), 4)}

    figures = {"model": args.model, "linears": len(ratios),
               "worst_inputs": dict(sorted(ratios.items(), key=lambda kv: -kv[1])[:8]),
               "int8": cosine(False), "int8_per_channel": cosine(True)}
    for r in (float(x) for x in args.ratios.split(",")):
        figures[f"int8_per_channel_keep_outliers_{r:g}"] = cosine(True, [n for n, v in ratios.items() if v > r])
    figures["int8_per_channel_keep_every_down_proj"] = cosine(True, [n for n in ratios if n.endswith("down_proj")])
    figures["int8_token"] = cosine(True, method="int8-token")
    figures["int8_token_keep_outliers_20"] = cosine(True, [n for n, v in ratios.items() if v > 20], "int8-token")
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
