"""bench/loss_by_query_length.py: the per-query difference of two systems by query length."""

import numpy as np

from tests.conftest import bench_script


def test_a_loss_on_long_queries_shows_in_the_longest_bin():
    from effir.eval.significance import compare

    script = bench_script("loss_by_query_length")
    rng = np.random.default_rng(0)
    lengths = {f"q{i}": int(n) for i, n in enumerate(rng.integers(10, 130, 90))}
    against = {q: {"ndcg@10": float(v)} for q, v in zip(lengths, rng.uniform(0.3, 1.0, 90))}
    # the run loses about 0.2 on every query over 80 tokens and nothing on the others
    loss = dict(zip(lengths, rng.uniform(0.1, 0.3, 90)))
    run = {q: {"ndcg@10": against[q]["ndcg@10"] - (loss[q] if lengths[q] > 80 else 0.0)} for q in lengths}
    out = script.by_length(run, against, lengths, parts=3)
    assert out["queries"] == 90 and out["spearman_rho"] < -0.5 and out["spearman_p"] < 0.001
    bins = out["bins"]
    assert sum(b["queries"] for b in bins) == 90  # every query in exactly one bin
    assert bins[0]["tokens"][0] == min(lengths.values()) and bins[-1]["tokens"][1] == max(lengths.values())
    assert all(a["tokens"][1] + 1 == b["tokens"][0] for a, b in zip(bins, bins[1:]))
    assert bins[0]["delta"] == 0.0 and bins[-1]["delta"] < -0.1
    longest = [q for q in lengths if lengths[q] >= bins[-1]["tokens"][0]]
    assert bins[-1] == {"tokens": bins[-1]["tokens"],
                        **compare({q: run[q] for q in longest}, {q: against[q] for q in longest})}
