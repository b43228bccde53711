"""Document encoding throughput: effir's encoder against sentence-transformers' `encode`, same model and inputs.

Both encode the same SciFact documents, truncated at the same length (256 tokens), fp32 on CPU, in alternating
rounds after a warm-up; docs/s are medians and the ratio comes from this one run.

    .venv/bin/python bench/encode_vs_sentence_transformers.py --dataset ../shared/data/beir/scifact
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--docs", type=int, default=1024, help="documents per round (0: the whole corpus)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32, help="sentence-transformers batch size")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    from effir.core.data import BeirDataset
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import Encoder

    threads = configure_threads(args.threads)
    docs = [d.contents for d in BeirDataset(args.dataset).corpus()]
    if args.docs:
        docs = random.Random(0).sample(docs, min(args.docs, len(docs)))
    spec = resolve("minilm")
    ours = Encoder(spec, device="cpu")
    st = SentenceTransformer(spec.path, device="cpu")
    st.max_seq_length = spec.passage_max_length

    def run_ours():
        return ours.encode(docs)[0]

    def run_st():
        return st.encode(docs, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)

    a, b = run_ours(), run_st()  # warm-up, and the two must agree
    agreement = float(np.min(np.sum(a * b, axis=1)))
    times = {"effir": [], "sentence-transformers": []}
    for r in range(args.rounds):
        order = [("effir", run_ours), ("sentence-transformers", run_st)]
        for name, fn in order if r % 2 == 0 else reversed(order):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        print(f"round {r + 1}: " + ", ".join(f"{n} {len(docs) / t[-1]:.1f} docs/s" for n, t in times.items()), flush=True)
    rate = {n: len(docs) / statistics.median(t) for n, t in times.items()}
    print(f"\n{len(docs)} SciFact documents, max 256 tokens, fp32, {threads} threads, {args.rounds} rounds (medians)")
    print(f"effir                 {rate['effir']:.1f} docs/s")
    print(f"sentence-transformers {rate['sentence-transformers']:.1f} docs/s")
    print(f"ratio effir / ST      {rate['effir'] / rate['sentence-transformers']:.3f}x")
    print(f"min cosine between the two embeddings of a document: {agreement:.6f}")


if __name__ == "__main__":
    main()
