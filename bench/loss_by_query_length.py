"""Does a compressed system lose more on long queries? Per-query nDCG@10 of RUN against AGAINST, by query length.

Scores the two TREC runs on DATASET's qrels as `effir eval --against` does, measures each judged query in tokens as
MODEL's encoder sees it (its query prefix and EOS included, cut at its query maximum), and prints the Spearman
correlation of query length with the per-query difference, and for each third of the queries by length (cut at
the length's terciles) the paired comparison (`eval.significance.compare`: Δ, share and their 95 % intervals, p).

    .venv/bin/python bench/loss_by_query_length.py --dataset ../shared/data/beir/cisi \\
      --run runs/llm/systems/cisi/smollm2-effir-d2-mixed4-r64/run.test.trec \\
      --against runs/llm/systems/cisi/smollm2-ft-3k-mixed4-r64/run.test.trec \\
      --model runs/llm/rebuilt/smollm2-ft-3k-mixed4-r64 --json out.json
"""

from __future__ import annotations

import argparse

import numpy as np


def by_length(run_scores: dict, against_scores: dict, lengths: dict, parts: int = 3) -> dict:
    """Spearman's rho of length against the per-query difference, and the paired comparison within each of `parts`
    length bins (quantile cuts; a bin holds the queries up to and including its upper cut)."""
    from scipy import stats

    from effir.eval.significance import compare

    qids = sorted(set(run_scores) & set(against_scores) & set(lengths))
    length = np.array([lengths[q] for q in qids])
    delta = np.array([run_scores[q]["ndcg@10"] - against_scores[q]["ndcg@10"] for q in qids])
    rho, p = stats.spearmanr(length, delta)
    cuts = np.quantile(length, np.linspace(0, 1, parts + 1))
    bins, low = [], None
    for high in cuts[1:]:
        inside = [q for q, n in zip(qids, length) if (low is None or n > low) and n <= high]
        if inside:
            bins.append({"tokens": [int(cuts[0] if low is None else np.floor(low) + 1), int(high)],
                         **compare({q: run_scores[q] for q in inside}, {q: against_scores[q] for q in inside})})
        low = high
    return {"queries": len(qids), "median_tokens": float(np.median(length)),
            "spearman_rho": round(float(rho), 4), "spearman_p": round(float(p), 5), "bins": bins}


def main():
    from transformers import AutoTokenizer

    from effir.core.data import BeirDataset
    from effir.core.files import write_json
    from effir.core.models import resolve
    from effir.core.trec import read_trec_run
    from effir.encoder.model import tokenize
    from effir.eval.metrics import per_query
    from effir.eval.report import percent_interval

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--run", required=True, help="the compressed system's TREC run")
    ap.add_argument("--against", required=True, help="the system it is compared with")
    ap.add_argument("--model", required=True, help="an encoder folder: query lengths in its tokens")
    ap.add_argument("--parts", type=int, default=3, help="length bins (quantile cuts)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    dataset = BeirDataset(args.dataset)
    judged = dataset.qrels(args.split)
    queries = dataset.queries()
    spec = resolve(args.model)
    qids = sorted(q for q in judged if q in queries)
    ids = tokenize(AutoTokenizer.from_pretrained(spec.path), spec, [queries[q] for q in qids], side="query")
    lengths = {q: len(x) for q, x in zip(qids, ids)}
    out = by_length(per_query(read_trec_run(args.run), judged), per_query(read_trec_run(args.against), judged),
                    lengths, args.parts)
    print(f"{out['queries']} queries, median {out['median_tokens']:g} tokens; Spearman rho of length against "
          f"the difference {out['spearman_rho']:+.3f} (p {out['spearman_p']:.4f})")
    for b in out["bins"]:
        print(f"  {b['tokens'][0]}–{b['tokens'][1]} tokens, {b['queries']} queries: Δ {b['delta']:+.4f}, "
              f"{100 * b['share']:.1f} % (95 % interval {percent_interval(b['share_ci95'])}), "
              f"p {b['p_randomization']:.4f}")
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
