"""`effir bench` on a 200-document dataset with tiny models: report schema and internal consistency."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from effir.cli import main
from effir.eval.report import SCHEMA_KEYS
from tests.conftest import write_corpus


@pytest.fixture
def dataset200(tmp_path):
    root = tmp_path / "d200"
    (root / "qrels").mkdir(parents=True)
    write_corpus(root / "corpus.jsonl", 200, seed=3)
    docs = [json.loads(line) for line in open(root / "corpus.jsonl")]
    with open(root / "queries.jsonl", "w") as f, open(root / "qrels" / "test.tsv", "w") as q:
        q.write("query-id\tcorpus-id\tscore\n")
        for i in range(20):
            f.write(json.dumps({"_id": f"q{i}", "text": docs[i * 7]["title"]}) + "\n")
            q.write(f"q{i}\td{i * 7}\t1\n")
    return root


def test_bench_report(tmp_path, dataset200, tiny_bert):
    from effir.compression.steps import drop

    compressed = tmp_path / "tiny-drop1"
    drop(str(tiny_bert), compressed, None, mlp_layers=[1])
    out = tmp_path / "bench"
    args = ["bench", "--dataset", str(dataset200), "--systems", f"bm25,{tiny_bert},{compressed}", "--out", str(out),
            "--timing-docs", "40", "--timing-queries", "5", "--rounds", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "d200" and {"cpu", "threads", "torch", "faiss", "transformers"} <= set(report["machine"])
    systems = {s["name"]: s for s in report["systems"]}
    assert [s["kind"] for s in report["systems"]] == ["bm25", "full", "compressed"]
    for s in report["systems"]:
        assert set(SCHEMA_KEYS) <= set(s)
        assert 0.0 <= s["ndcg@10"] <= 1.0 and s["queries"] == 20
    bm25, full, comp = systems["bm25"], systems[tiny_bert.name], systems["tiny-drop1"]
    assert bm25["doc_encode_s"] is None and bm25["params"] is None and bm25["p_value_vs_full"] is not None
    assert full["doc_speedup"] == 1.0 and full["p_value_vs_full"] is None
    assert comp["doc_speedup"] == pytest.approx(full["doc_encode_s"] / comp["doc_encode_s"], rel=1e-2)
    assert comp["query_speedup"] == pytest.approx(full["query_encode_s"] / comp["query_encode_s"], rel=1e-2)
    assert comp["params"] < full["params"] and comp["flops_per_token"] < full["flops_per_token"]
    assert full["index_bytes"] == comp["index_bytes"]  # same dimension and count: same Flat index size
    meta = json.loads((out / "systems" / "d200" / "tiny-drop1" / "index" / "meta.json").read_text())
    assert meta["count"] == 200
    for f in ("report.md", "pareto.png", "importance/importance.png"):
        assert (out / f).stat().st_size > 0
    # a rerun reuses the finished stages and reproduces the quality figures exactly
    stages = (out / "systems" / "d200" / "tiny-drop1" / "stages.json").read_text()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    again = {s["name"]: s for s in json.loads((out / "report.json").read_text())["systems"]}
    assert all(again[n]["ndcg@10"] == systems[n]["ndcg@10"] for n in systems)
    assert (out / "systems" / "d200" / "tiny-drop1" / "stages.json").read_text() == stages
