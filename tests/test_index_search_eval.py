"""FAISS index build (Flat, HNSW, IVF-PQ), dense search to a TREC run, metrics against Pyserini's trec_eval."""

from __future__ import annotations

import json
import random
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from effir.cli import main
from effir.core.data import read_qrels
from effir.core.trec import read_trec_run, write_trec_run
from effir.eval.metrics import evaluate
from effir.eval.significance import compare, paired_randomization


@pytest.fixture
def encoded(tmp_path, tiny_bert, tiny_dataset):
    out = tmp_path / "shards"
    r = CliRunner().invoke(main, ["encode", "-m", str(tiny_bert), "--corpus", str(tiny_dataset / "corpus.jsonl"),
                                  "--out", str(out), "--shard-size", "25"])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,PQ8x4"])
def test_index_build_and_meta(tmp_path, encoded, factory):
    out = tmp_path / "index"
    r = CliRunner().invoke(main, ["index", "--shards", str(encoded), "--out", str(out), "--factory", factory])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["count"] == 60 and meta["dim"] == 32 and meta["factory"] == factory
    assert meta["bytes_on_disk"] == (out / "index.faiss").stat().st_size
    assert meta["bytes_per_vector"] == pytest.approx(meta["bytes_on_disk"] / 60, rel=1e-3)
    for key in ("build_seconds", "peak_memory_bytes"):
        assert meta[key] > 0
    assert (out / "docids.txt").read_text().split() == [f"d{i}" for i in range(60)]


def test_index_training_too_small_is_a_clear_error(tmp_path, encoded):
    r = CliRunner().invoke(main, ["index", "--shards", str(encoded), "--out", str(tmp_path / "i"), "--factory", "IVF4,PQ8"])
    assert r.exit_code != 0 and "IVF4,PQ8: training on 60 vectors failed" in r.output


@pytest.mark.parametrize("factory", ["PQ8", "IVF4,PQ8", "OPQ8,IVF4,PQ8", "HNSW8,PQ8"])
def test_pq_codes_skip_polysemous_training(factory):
    from effir.index.build import _factory, index_parts

    pq = [p for p in index_parts(_factory(64, factory)) if hasattr(p, "do_polysemous_training")]
    assert len(pq) == 1 and not pq[0].do_polysemous_training  # FAISS's factory turns it on: ~25x the PQ training


def test_flat_search_finds_each_document_itself(tmp_path, encoded, tiny_bert, tiny_dataset):
    CliRunner().invoke(main, ["index", "--shards", str(encoded), "--out", str(tmp_path / "idx")])
    queries = tmp_path / "q.jsonl"
    docs = [json.loads(line) for line in open(tiny_dataset / "corpus.jsonl")][:10]
    queries.write_text("".join(json.dumps({"_id": d["_id"], "text": f"{d['title']} {d['text']}"}) + "\n" for d in docs))
    run = tmp_path / "run.trec"
    r = CliRunner().invoke(main, ["search", "--index", str(tmp_path / "idx"), "-m", str(tiny_bert),
                                  "--queries", str(queries), "--out", str(run), "--k", "5"])
    assert r.exit_code == 0, r.output
    assert "p50" in r.output and "p95" in r.output
    lines = run.read_text().splitlines()
    assert len(lines) == 50 and lines[0].split()[1] == "Q0" and lines[0].split()[3] == "1"
    hits = read_trec_run(run)
    assert all(max(h, key=h.get) == q for q, h in hits.items())  # a document is its own nearest neighbour
    # --remove-query drops it
    r = CliRunner().invoke(main, ["search", "--index", str(tmp_path / "idx"), "-m", str(tiny_bert),
                                  "--queries", str(queries), "--out", str(run), "--k", "5", "--remove-query"])
    assert all(q not in h and len(h) == 5 for q, h in read_trec_run(run).items())


def test_search_with_qrels_keeps_judged_queries(tmp_path, encoded, tiny_bert, tiny_dataset):
    CliRunner().invoke(main, ["index", "--shards", str(encoded), "--out", str(tmp_path / "idx")])
    run = tmp_path / "run.trec"
    r = CliRunner().invoke(main, ["search", "--index", str(tmp_path / "idx"), "-m", str(tiny_bert), "--queries",
                                  str(tiny_dataset / "queries.jsonl"), "--qrels",
                                  str(tiny_dataset / "qrels" / "test.tsv"), "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert set(read_trec_run(run)) == {"q8", "q9", "q10", "q11"}


def _random_run(seed=0):
    rng = random.Random(seed)
    qrels = {f"q{q}": {f"d{d}": rng.choice([1, 2, 3]) for d in rng.sample(range(200), rng.randint(1, 8))}
             for q in range(30)}
    run = {}
    for q in qrels:
        docs = rng.sample(range(200), 150)
        run[q] = [(f"d{d}", round(rng.random(), 2)) for d in docs]  # coarse scores: ties on purpose
        run[q].sort(key=lambda x: -x[1])
    return qrels, run


def test_metrics_match_pyserini_trec_eval(tmp_path):
    import pyserini

    from effir.search.jvm import java_home

    qrels, results = _random_run()
    run_path, cut_path, qrels_path = tmp_path / "run.trec", tmp_path / "cut.trec", tmp_path / "qrels.txt"
    write_trec_run(run_path, results, "t")
    write_trec_run(cut_path, {q: h[:10] for q, h in results.items()}, "t")
    qrels_path.write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in qrels.items() for d, r in docs.items()))
    jar = next((__import__("pathlib").Path(pyserini.__file__).parent / "resources" / "jars").glob("*fatjar.jar"))
    java = str(java_home() / "bin" / "java")

    def trec_eval(measures, path):
        cmd = [java, "-cp", str(jar), "trec_eval", "-c"] + sum((["-m", m] for m in measures), []) + [str(qrels_path), str(path)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return {line.split()[0]: float(line.split()[2]) for line in out.splitlines() if line.split()[1] == "all"}

    ours = evaluate(read_trec_run(run_path), read_qrels(qrels_path))
    ref = trec_eval(["ndcg_cut.10", "recall.100"], run_path)
    assert ours["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"], abs=1e-4)
    assert ours["recall@100"] == pytest.approx(ref["recall_100"], abs=1e-4)
    assert ours["mrr@10"] == pytest.approx(trec_eval(["recip_rank"], cut_path)["recip_rank"], abs=1e-4)


def test_eval_cli_json(tmp_path):
    qrels, results = _random_run(1)
    write_trec_run(tmp_path / "run.trec", results, "t")
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, docs in qrels.items() for d, r in docs.items()))
    r = CliRunner().invoke(main, ["eval", "--run", str(tmp_path / "run.trec"), "--qrels", str(tmp_path / "q.tsv"),
                                  "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0 and "nDCG@10" in r.output
    assert set(json.loads((tmp_path / "m.json").read_text())) >= {"ndcg@10", "recall@100", "mrr@10"}
    # against a second run: both scored, and the paired test of the first against it
    (tmp_path / "b").mkdir()
    write_trec_run(tmp_path / "b" / "run.trec", _random_run(2)[1], "t")
    r = CliRunner().invoke(main, ["eval", "--run", str(tmp_path / "run.trec"), "--against", str(tmp_path / "b" / "run.trec"),
                                  "--qrels", str(tmp_path / "q.tsv"), "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    both = json.loads((tmp_path / "m.json").read_text())
    assert "b/run.trec" in r.output and both["against"]["queries"] == 30
    other = evaluate(read_trec_run(tmp_path / "b" / "run.trec"), read_qrels(tmp_path / "q.tsv"))
    assert both["against"]["delta"] == pytest.approx(both["ndcg@10"] - other["ndcg@10"], abs=1e-5)
    assert both["against"]["share"] == pytest.approx(both["ndcg@10"] / other["ndcg@10"], abs=1e-5)
    low, high = both["against"]["share_ci95"]
    assert low < both["against"]["share"] < high
    assert f"{100 * both['against']['share']:.1f} % of its nDCG@10 (95 % interval {100 * low:.1f}–{100 * high:.1f})" \
        in r.output


def test_eval_cli_several_runs_per_system(tmp_path):
    """--run and --against repeated (one system's training seeds): each file scored, each side's mean, and the paired
    test on each query's mean over a side's runs; the same file twice is refused."""
    from effir.eval.metrics import mean_per_query, per_query
    from effir.eval.significance import compare

    qrels, _ = _random_run(1)
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, docs in qrels.items() for d, r in docs.items()))
    files = {}
    for name, seed in {"a0": 2, "a1": 3, "b0": 4, "b1": 5}.items():
        files[name] = tmp_path / f"{name}.trec"
        write_trec_run(files[name], _random_run(seed)[1], name)
    args = ["eval", "--qrels", str(tmp_path / "q.tsv"), "--json", str(tmp_path / "m.json")]
    r = CliRunner().invoke(main, args + ["--run", str(files["a0"]), "--run", str(files["a1"]),
                                         "--against", str(files["b0"]), "--against", str(files["b1"])])
    assert r.exit_code == 0, r.output
    assert "mean of 2 --run runs" in r.output and "mean of 2 --against runs" in r.output
    out = json.loads((tmp_path / "m.json").read_text())
    judged = read_qrels(tmp_path / "q.tsv")
    one = {name: evaluate(read_trec_run(path), judged) for name, path in files.items()}
    assert out["ndcg@10"] == pytest.approx((one["a0"]["ndcg@10"] + one["a1"]["ndcg@10"]) / 2, abs=1e-5)
    assert out["runs"][str(files["a1"])] == one["a1"]
    side = {s: mean_per_query([per_query(read_trec_run(files[f"{s}{i}"]), judged) for i in (0, 1)]) for s in "ab"}
    expected = compare(side["a"], side["b"])
    assert out["against"] == {"runs": [str(files["b0"]), str(files["b1"])], **expected}
    assert out["against"]["delta"] == pytest.approx(
        out["ndcg@10"] - (one["b0"]["ndcg@10"] + one["b1"]["ndcg@10"]) / 2, abs=1e-5)
    r = CliRunner().invoke(main, args + ["--run", str(files["a0"]), "--against", str(files["a0"])])
    assert r.exit_code != 0 and "given twice" in r.output


def test_significance():
    a = np.linspace(0, 1, 50)
    assert paired_randomization(a, a) == 1.0
    assert paired_randomization(a + 0.2, a) < 0.01
    pq = {f"q{i}": {"ndcg@10": float(v)} for i, v in enumerate(a)}
    assert compare(pq, pq)["p_randomization"] == 1.0
    # the interval holds the mean difference and, for a clear shift, not 0
    shifted = {q: {"ndcg@10": v["ndcg@10"] + 0.2 + 0.01 * (i % 3)} for i, (q, v) in enumerate(pq.items())}
    low, high = compare(shifted, pq)["delta_ci95"]
    assert 0 < low < compare(shifted, pq)["delta"] < high
    assert compare(pq, pq)["delta_ci95"] == [0.0, 0.0]
    assert (compare(pq, pq)["share"], compare(pq, pq)["share_ci95"]) == (1.0, [1.0, 1.0])


def test_share_interval_inverts_the_paired_t_test():
    """Fieller's interval for mean(a) / mean(b): at each end R the paired t-test of a − R·b reads p = 0.05, inside it
    more; for a share near 1 it is close to the difference's interval over mean(b) (how the reports derived it
    before); unbounded when B's mean is not clearly above 0."""
    from scipy import stats

    from effir.eval.significance import paired_interval, share_interval

    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, 300)
    for a in (np.clip(b + rng.normal(-0.02, 0.1, 300), 0, 1), rng.uniform(0, 1, 300)):
        low, high = share_interval(a, b)
        assert low < a.mean() / b.mean() < high
        for end in (low, high):
            assert stats.ttest_1samp(a - end * b, 0).pvalue == pytest.approx(0.05, abs=1e-6)
        assert stats.ttest_1samp(a - (low + high) / 2 * b, 0).pvalue > 0.05
        assert 1 + np.array(paired_interval(a, b)) / b.mean() == pytest.approx([low, high], abs=0.01)
    assert share_interval(rng.normal(0, 1, 20), rng.normal(0, 1, 20)) == (None, None)
    assert share_interval([0.5], [0.5]) == (None, None)


def test_docids_are_read_back_row_by_row(tmp_path):
    from effir.index.build import DocIds, IndexBuildError

    ids = ["d0", "ünïcode-1", "", "x" * 300, "last"]
    path = tmp_path / "docids.txt"
    for text in ("\n".join(ids) + "\n", "\n".join(ids)):  # as written, and without the final newline
        path.write_text(text, encoding="utf-8")
        docids = DocIds(path, len(ids))
        assert [docids[i] for i in range(len(docids))] == ids
    assert len(DocIds(path, 3)) == 3  # an index may hold fewer rows than the file lists
    with pytest.raises(IndexError):
        DocIds(path, 3)[3]
    with pytest.raises(IndexBuildError, match="5 docids for an index of 6 vectors"):
        DocIds(path, 6)
