"""int8-token's linear against torch's dynamic int8 and fp32, by input shape: one SmolLM2 MLP projection
(576 → 1536) on the rows of a query batch (32 × 40 tokens) and of a document batch (32 × 256 tokens); interleaved
rounds after a warm-up, medians in ms. The first kernel (fresh tensors for every elementwise step) is timed beside
them, to show what the in-place dequantisation changed.

    .venv/bin/python bench/int8_token_kernel.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    import torch

    from effir.compression.quantize import Int8TokenLinear
    from effir.core.device import configure_threads

    configure_threads(args.threads)
    torch.manual_seed(0)
    linear = torch.nn.Linear(576, 1536, bias=False)
    token = Int8TokenLinear(linear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear},
                                                         dtype=torch.qint8)

    def first_kernel(x):  # int8-token as first committed: every elementwise step allocates
        scale = x.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
        return torch._int_mm(torch.round(x / scale).to(torch.int8), token.weight_t).float() * scale * token.weight_scale

    kernels = {"fp32": linear, "dynamic int8": dynamic, "int8-token": token, "int8-token, first kernel": first_kernel}
    with torch.inference_mode():
        for label, rows in (("queries 32 x 40", 32 * 40), ("documents 32 x 256", 32 * 256)):
            x = torch.randn(rows, 576)
            times = {k: [] for k in kernels}
            for f in kernels.values():
                f(x)
            for _ in range(args.rounds):
                for k, f in kernels.items():
                    t = time.perf_counter()
                    f(x)
                    times[k].append(time.perf_counter() - t)
            print(label + ": " + ", ".join(f"{k} {1e3 * statistics.median(v):.2f} ms" for k, v in times.items()))


if __name__ == "__main__":
    main()
