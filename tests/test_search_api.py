"""Fusion, exact re-ranking of a compressed index, the Python Searcher (its docstring examples run) and one query
typed by a person."""

from __future__ import annotations

import doctest
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from effir.cli import main
from effir.core.trec import read_trec_run
from tests.conftest import LUCENE


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_bert):
    """A 60-document corpus encoded by the tiny BERT (3 shards) and indexed Flat and IVF-PQ."""
    from tests.conftest import write_corpus

    root = tmp_path_factory.mktemp("searchapi")
    write_corpus(root / "corpus.jsonl", 60, seed=4)
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in
                                                enumerate(["protein binding", "brain neuron", "heart lung"])))
    for args in (["encode", "-m", str(tiny_bert), "--corpus", str(root / "corpus.jsonl"), "--out",
                  str(root / "shards"), "--shard-size", "20"],
                 ["index", "--shards", str(root / "shards"), "--out", str(root / "flat")],
                 ["index", "--shards", str(root / "shards"), "--out", str(root / "ivfpq"), "--factory", "IVF2,PQ4x4"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
    return root


def _search(root, bert, index, out, *extra):
    return CliRunner().invoke(main, ["search", "--index", str(root / index), "-m", str(bert), "--queries",
                                     str(root / "queries.jsonl"), "--out", str(out), *extra])


def test_rerank_of_every_candidate_equals_exact_search(tmp_path, indexed, tiny_bert):
    assert _search(indexed, tiny_bert, "flat", tmp_path / "flat.trec", "--k", "10").exit_code == 0
    assert _search(indexed, tiny_bert, "ivfpq", tmp_path / "pq.trec", "--k", "10").exit_code == 0
    r = _search(indexed, tiny_bert, "ivfpq", tmp_path / "rr.trec", "--k", "10", "--rerank", "60", "--nprobe", "2")
    assert r.exit_code == 0, r.output
    flat, pq, rr = (read_trec_run(tmp_path / f) for f in ("flat.trec", "pq.trec", "rr.trec"))
    for qid in flat:  # all 60 candidates re-scored exactly: the exact top 10 with exact scores
        assert sorted(rr[qid], key=rr[qid].get) == sorted(flat[qid], key=flat[qid].get)
        assert rr[qid] == pytest.approx(flat[qid], abs=1e-5)
    assert pq != flat  # the compressed index alone approximates


def test_rerank_refuses_changed_or_missing_shards_and_bad_k(tmp_path, indexed, tiny_bert):
    r = _search(indexed, tiny_bert, "ivfpq", tmp_path / "x.trec", "--k", "10", "--rerank", "5")
    assert r.exit_code == 2 and "--rerank 5" in r.output
    copy = tmp_path / "shards"
    shutil.copytree(indexed / "shards", copy)
    with open(copy / "part-00001.parquet", "ab") as f:
        f.write(b"\0")
    r = _search(indexed, tiny_bert, "ivfpq", tmp_path / "x.trec", "--k", "10", "--rerank", "20", "--shards", str(copy))
    assert r.exit_code == 2 and "part-00001.parquet: checksum does not match" in r.output
    r = _search(indexed, tiny_bert, "ivfpq", tmp_path / "x.trec", "--k", "10", "--rerank", "20", "--shards",
                str(tmp_path / "gone"))
    assert r.exit_code == 2 and "gone" in r.output and not (tmp_path / "x.trec").exists()


def test_raw_copy_holds_the_shards_rows_and_is_remade_when_stale(tmp_path, indexed):
    from effir.encoder.shards import load_all
    from effir.search.rerank import RAW, RAW_META, ShardVectors, exact_rerank

    folder = tmp_path / "shards"
    shutil.copytree(indexed / "shards", folder)
    _ids, x = load_all(folder)
    rows = np.array([59, 0, 20, 19, 40, 0])  # across shards, out of order, repeated
    np.testing.assert_array_equal(ShardVectors(folder).rows(rows), x[rows])
    made = (folder / RAW).stat().st_mtime_ns
    ShardVectors(folder)
    assert (folder / RAW).stat().st_mtime_ns == made  # reused while the shards are unchanged
    meta = json.loads((folder / RAW_META).read_text())
    (folder / RAW_META).write_text(json.dumps({**meta, "shards": meta["shards"][::-1]}))
    (folder / RAW).write_bytes(b"\0" * (folder / RAW).stat().st_size)  # a stale copy must not be read
    np.testing.assert_array_equal(ShardVectors(folder).rows(rows), x[rows])
    # a batch: each query keeps its best k by exact score; ids the index left empty (-1) stay last
    q = x[[3, 41]]
    scores, ids = exact_rerank(ShardVectors(folder), q, np.array([[7, 3, -1, 50], [41, -1, 2, 9]]), 3)
    by_score = [sorted(c, key=lambda j, i=i: -x[j] @ x[i]) for i, c in ((3, [7, 50]), (41, [2, 9]))]
    assert ids.tolist() == [[3, *by_score[0]], [41, *by_score[1]]]
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, ids, axis=1), rtol=1e-6)
    assert exact_rerank(ShardVectors(folder), q[:1], np.array([[5, -1, -1]]), 3)[1].tolist() == [[5, -1, -1]]


def test_rerank_in_chunks_equals_one_pass(indexed, monkeypatch):
    from effir.encoder.shards import load_all
    from effir.search import rerank

    _ids, x = load_all(indexed / "shards")
    candidates = np.random.default_rng(0).integers(-1, len(x), size=(7, 5))
    whole = rerank.exact_rerank(rerank.ShardVectors(indexed / "shards"), x[:7], candidates, 3)
    monkeypatch.setattr(rerank, "RERANK_BUFFER_BYTES", 2 * 5 * x.shape[1] * 4)  # two queries a chunk: 4 chunks
    chunked = rerank.exact_rerank(rerank.ShardVectors(indexed / "shards"), x[:7], candidates, 3)
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_array_equal(chunked[0], whole[0])
    none = rerank.exact_rerank(rerank.ShardVectors(indexed / "shards"), x[:0], candidates[:0], 3)
    assert none[0].shape == none[1].shape == (0, 3)


def _write_run(path, rows):
    path.write_text("".join(f"{q} Q0 {d} {i + 1} {s} t\n" for q, hits in rows.items() for i, (d, s) in enumerate(hits)))
    return path


def test_fuse_cli_rrf_interp_and_errors(tmp_path):
    a = _write_run(tmp_path / "a.trec", {"q1": [("d1", 9.0), ("d2", 5.0)], "q2": [("d9", 1.0)]})
    b = _write_run(tmp_path / "b.trec", {"q1": [("d2", 0.8), ("d3", 0.7)]})
    r = CliRunner().invoke(main, ["fuse", "--run", str(a), "--run", str(b), "--out", str(tmp_path / "f.trec")])
    assert r.exit_code == 0, r.output
    assert "1 queries are in only some of the runs" in r.stderr
    fused = read_trec_run(tmp_path / "f.trec")
    assert fused["q1"] == pytest.approx({"d2": 1 / 61 + 1 / 62, "d1": 1 / 61, "d3": 1 / 62}, abs=1e-6)
    assert fused["q2"] == pytest.approx({"d9": 1 / 61}, abs=1e-6)
    r = CliRunner().invoke(main, ["fuse", "--run", str(a), "--run", str(b), "--method", "interp", "--weights",
                                  "0.25,0.75", "--out", str(tmp_path / "i.trec")])
    assert r.exit_code == 0, r.output
    assert read_trec_run(tmp_path / "i.trec")["q1"] == pytest.approx({"d1": 0.25, "d2": 0.75, "d3": 0.0})
    c = _write_run(tmp_path / "c.trec", {"q7": [("d1", 1.0)]})
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2\n")
    for args, message in ((["--run", str(a), "--run", str(c)], "share no query"),
                          (["--run", str(a), "--run", str(b), "--method", "interp", "--weights", "1"], "--weights"),
                          (["--run", str(a), "--run", str(bad)], "bad.trec:2")):
        r = CliRunner().invoke(main, ["fuse", *args, "--out", str(tmp_path / "never.trec")])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "never.trec").exists()


def test_search_query_prints_titles(indexed, tiny_bert):
    r = CliRunner().invoke(main, ["search", "--index", str(indexed / "flat"), "-m", str(tiny_bert), "--query",
                                  "protein binding", "--k", "3"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    titles = {json.loads(x)["_id"]: json.loads(x)["title"] for x in open(indexed / "corpus.jsonl")}
    assert len(lines) == 3 and [int(x.split()[0]) for x in lines] == [1, 2, 3]
    assert all(line.split(None, 3)[3] == titles[line.split()[2]] for line in lines)


@LUCENE
def test_docstring_examples_run(tmp_path, indexed):
    from effir.search import fusion, searcher

    for module, globs in ((fusion, {}), (searcher, {"index_dir": str(indexed / "flat"),
                                                    "corpus_path": str(indexed / "corpus.jsonl"),
                                                    "work_dir": str(tmp_path / "bm25")})):
        result = doctest.testmod(module, extraglobs=globs, raise_on_error=False, verbose=False)
        assert result.attempted > 3 and result.failed == 0, module.__name__
