"""Why an untrained decoder scores near zero as a retriever: pooling and instruction, side by side.

One forward pass per text gives both poolings (the last token, i.e. the appended EOS, as the EffiR evaluation script
pools; and the mean over tokens), for queries with and without the instruction. Searched exactly over a reduced
corpus (every document judged for the test queries plus random others), so absolute nDCG@10 is higher than on the
full corpus; the comparison between variants is the point. Hubness: the share of queries whose top hit is one of
the 3 documents most often ranked first.

    .venv/bin/python bench/zero_shot_pooling.py --dataset ../shared/data/beir/scifact --model smollm2-135m --docs 1000
"""

from __future__ import annotations

import argparse
import collections
import random
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F


def pooled(encoder, texts: list[str], side: str) -> dict[str, np.ndarray]:
    """{"last": [N, D], "mean": [N, D]} L2-normalised, from one forward pass per length-sorted batch."""
    from effir.encoder.model import pad_batch
    from effir.encoder.pooling import pool

    ids = encoder.tokenize(texts, side)
    out = {how: np.zeros((len(texts), encoder.dim), dtype=np.float32) for how in ("last", "mean")}
    with torch.inference_mode():
        for batch in encoder.batches([len(x) for x in ids]):
            input_ids, mask = pad_batch([ids[i] for i in batch], encoder.tokenizer.pad_token_id, encoder.device)
            hidden = encoder.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            for how in out:
                out[how][batch] = F.normalize(pool(hidden, mask, how).float(), dim=-1).numpy()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--docs", type=int, default=1000, help="corpus size: every judged document plus random others")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from effir.core.data import BeirDataset
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder.model import Encoder
    from effir.eval.metrics import evaluate

    configure_threads(args.threads)
    ds = BeirDataset(args.dataset)
    corpus = {d.docid: d.contents for d in ds.corpus()}
    queries = ds.queries()
    qrels = ds.qrels("test")
    judged = sorted({d for rel in qrels.values() for d in rel})
    others = sorted(set(corpus) - set(judged))
    docids = judged + random.Random(0).sample(others, max(0, args.docs - len(judged)))
    qids = sorted(qrels)

    spec = resolve(args.model)
    encoder = Encoder(spec, device="cpu")
    docs = pooled(encoder, [corpus[d] for d in docids], "passage")
    variants = {"instruction": spec.query_prefix, "no prefix": ""}
    print(f"{args.model}: {len(qids)} test queries against {len(docids)} documents ({len(judged)} judged); "
          f"EOS appended: {spec.append_eos}")
    print(f"{'pooling':<8} {'query prefix':<12} {'nDCG@10':>8} {'R@100':>7} {'top-1 hub share':>16} {'mean doc cos':>13}")
    for name, prefix in variants.items():
        encoder.spec = replace(spec, query_prefix=prefix)
        qvecs = pooled(encoder, [queries[q] for q in qids], "query")
        for how in ("last", "mean"):
            scores = qvecs[how] @ docs[how].T
            top = np.argsort(-scores, axis=1)[:, :100]
            run = {q: {docids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}
            m = evaluate(run, qrels)
            firsts = collections.Counter(top[:, 0].tolist())
            hub = sum(c for _, c in firsts.most_common(3)) / len(qids)
            sample = docs[how][:500]
            doc_cos = float((sample @ sample.T).mean())
            print(f"{how:<8} {name:<12} {m['ndcg@10']:>8.4f} {m['recall@100']:>7.4f} {hub:>16.2f} {doc_cos:>13.3f}")


if __name__ == "__main__":
    main()
