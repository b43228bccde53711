"""`effir bench` on a 200-document dataset with tiny models: report schema and internal consistency."""

from __future__ import annotations

import json
from functools import partial

import pytest
from click.testing import CliRunner

from effir.cli import main
from effir.eval.report import SCHEMA_KEYS
from effir.eval.results import SystemResult
from tests.conftest import LUCENE, write_corpus


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


@LUCENE
def test_bench_report(tmp_path, dataset200, tiny_bert, monkeypatch):
    from effir.compression.pairs import Example
    from effir.compression.steps import drop, finetune
    from effir.compression.train import TrainConfig

    # a trained parent and a compressed child of it: retention and p-values go against the parent
    trained = tmp_path / "tiny-ft"
    examples = [Example(f"topic {w}", f"a passage about {w}", [], source="toy pairs") for w in "abcdefgh"]
    finetune(str(tiny_bert), trained, examples, TrainConfig(batch_size=4, max_steps=2, lr=1e-2), tmp_path / "w")
    compressed = tmp_path / "tiny-drop1"
    drop(str(trained), compressed, None, mlp_layers=[1])
    out = tmp_path / "bench"
    args = ["bench", "--dataset", str(dataset200), "--systems", f"bm25,full={tiny_bert},{trained},{compressed}",
            "--out", str(out), "--timing-docs", "40", "--timing-queries", "5", "--rounds", "3", "--control",
            "--query-batch", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "d200" and {"cpu", "threads", "torch", "faiss", "transformers"} <= set(report["machine"])
    assert report["timing"]["precision"] == "fp32" and "Precision: fp32. " in (out / "report.md").read_text()
    systems = {s["name"]: s for s in report["systems"]}
    assert [s["kind"] for s in report["systems"]] == ["bm25", "full", "full", "compressed"]
    for s in report["systems"]:
        assert set(SCHEMA_KEYS) <= set(s)
        assert SystemResult.from_json(s).to_json() == s  # a row reads back as it was written (effir replot)
        assert 0.0 <= s["ndcg@10"] <= 1.0 and s["queries"] == 20
    bm25, full, ft, comp = systems["bm25"], systems["full"], systems["tiny-ft"], systems["tiny-drop1"]
    assert bm25["doc_encode_s"] is None and bm25["params"] is None and bm25["p_value_vs_full"] is not None
    assert full["doc_speedup"] == 1.0 and full["p_value_vs_full"] is None
    # each speedup is the median over rounds of the per-round ratio reference / system
    for task in ("doc", "query", "query_batch"):
        ratios = sorted(a / b for a, b in zip(full["rounds_s"][task], comp["rounds_s"][task]))
        assert comp[f"{task}_speedup"] == pytest.approx(ratios[1], rel=1e-2)
        assert comp[f"{task}_speedup_range"] == pytest.approx([ratios[0], ratios[-1]], rel=1e-2)
    assert report["timing"]["control"]["tolerance"] == 0.05 and "full-control" not in systems
    # parents: found through effir.json's made_from; none for the base model
    assert (full["parent"], ft["parent"], comp["parent"]) == (None, "full", "tiny-ft")
    assert comp["retention"] == pytest.approx(comp["ndcg@10"] / ft["ndcg@10"], abs=1e-4)
    assert ft["trained"].startswith("2 steps") and full["trained"] == "none"
    assert "8 examples (toy pairs 8)" in ft["trained"]  # what it was trained on
    assert comp["trained"].startswith("2 steps") and comp["trained"].endswith("; then drop, untrained")
    from effir.eval.significance import compare

    per_query = json.loads((out / "per_query.json").read_text())
    paired = compare(per_query["tiny-drop1"], per_query["tiny-ft"])
    assert comp["p_value_vs_parent"] == paired["p_randomization"]
    assert comp["retention_ci95"] == paired["share_ci95"]  # the share's interval, as `effir eval --against` gives it
    low, high = comp["retention_ci95"]
    assert low <= comp["retention"] <= high
    assert f"{100 * comp['retention']:.1f}% ({100 * low:.1f}–{100 * high:.1f})" in (out / "report.md").read_text()
    assert comp["params"] < ft["params"] and comp["flops_ratio"] > 1.0 and comp["query_flops_ratio"] > 1.0
    assert full["index_bytes"] == comp["index_bytes"]  # same dimension and count: same Flat index size
    meta = json.loads((out / "systems" / "d200" / "tiny-drop1" / "index" / "meta.json").read_text())
    assert meta["count"] == 200
    for f in ("report.md", "pareto.png", "importance/importance.png"):
        assert (out / f).stat().st_size > 0
    assert "| tiny-drop1 | compressed | tiny-ft |" in (out / "report.md").read_text()
    # a rerun reuses the finished stages and reproduces the quality figures exactly; --beside puts the first
    # report's compressed rows into this one's plot and report
    stages = (out / "systems" / "d200" / "tiny-drop1" / "stages.json").read_text()
    first = tmp_path / "first.json"
    first.write_text((out / "report.json").read_text())
    # the reference's importance (the plot) is kept in its work folder: the rerun does not compute it again
    plot = (out / "importance" / "importance.png").read_bytes()
    (out / "importance" / "importance.png").unlink()

    def analyze_again(*args, **kwargs):
        raise AssertionError("the reference's importance was computed again")

    monkeypatch.setattr("effir.compression.steps.analyze", analyze_again)
    # --peer: a second comparison for a row (here against the untrained model), beside its parent's
    r = CliRunner().invoke(main, args + ["--beside", str(first), "--peer", "tiny-drop1=full"])
    assert r.exit_code == 0, r.output
    rerun = json.loads((out / "report.json").read_text())
    again = {s["name"]: s for s in rerun["systems"]}
    assert all(again[n]["ndcg@10"] == systems[n]["ndcg@10"] for n in systems)
    peered = again["tiny-drop1"]
    assert (peered["peer"], peered["parent"], peered["retention"]) == ("full", "tiny-ft", comp["retention"])
    assert peered["retention_vs_peer"] == pytest.approx(comp["ndcg@10"] / full["ndcg@10"], abs=1e-4)
    assert peered["p_value_vs_peer"] == compare(per_query["tiny-drop1"], per_query["full"])["p_randomization"]
    assert peered["retention_vs_peer_ci95"] == compare(per_query["tiny-drop1"], per_query["full"])["share_ci95"]
    assert again["tiny-ft"]["peer"] is None and again["tiny-ft"]["retention_vs_peer"] is None
    assert f"| tiny-drop1 | full | {comp['ndcg@10']:.4f} | {full['ndcg@10']:.4f} |" in (out / "report.md").read_text()
    assert (out / "systems" / "d200" / "tiny-drop1" / "stages.json").read_text() == stages
    assert (out / "importance" / "importance.png").read_bytes() == plot
    assert rerun["beside"] == [{"report": str(first), "dataset": "d200", "reference": "full", "systems": [
        {"name": "tiny-drop1", "parent": "tiny-ft", "retention": comp["retention"],
         "doc_speedup": comp["doc_speedup"]}]}]
    assert f"compressed rows of `{first}`" in (out / "report.md").read_text()


def test_the_plot_shows_what_a_row_trained_after_its_cut_keeps_of_its_peer():
    """A row trained after its cut has no parent to keep quality of; the retention panel places it by its --peer (the
    parent given the same training), as the report's peer table does; a copy of that cut made without training (bf16)
    by the same peer, as its speed is against the uncompressed model too; a row whose parent is uncompressed, by the
    parent."""
    from effir.eval.report import _retention_points

    rows = [{"name": "ft", "kind": "full", "ndcg@10": 0.8, "retention": None, "doc_speedup": 1.0},
            {"name": "ft-bf16", "kind": "compressed", "ndcg@10": 0.804, "parent": "ft", "retention": 1.005,
             "peer": None, "retention_vs_peer": None, "doc_speedup": 1.9},
            {"name": "cut", "kind": "compressed", "ndcg@10": 0.6, "parent": None, "retention": None, "peer": "ft",
             "retention_vs_peer": 0.75, "doc_speedup": 1.85},
            {"name": "cut-bf16", "kind": "compressed", "ndcg@10": 0.62, "parent": "cut", "retention": 0.62 / 0.6,
             "peer": None, "retention_vs_peer": None, "doc_speedup": 3.07},
            {"name": "untimed", "kind": "compressed", "ndcg@10": 0.64, "parent": None, "retention": None, "peer": "ft",
             "retention_vs_peer": 0.8, "doc_speedup": None}]
    assert _retention_points(rows) == [
        {"name": "ft-bf16", "parent": "ft", "retention": 1.005, "doc_speedup": 1.9},
        {"name": "cut", "parent": "ft", "retention": 0.75, "doc_speedup": 1.85},
        {"name": "cut-bf16", "parent": "ft", "retention": pytest.approx(0.62 / 0.8), "doc_speedup": 3.07}]


@pytest.mark.parametrize("option", ["--parent", "--peer"])
def test_bench_refuses_a_parent_not_in_the_run(tmp_path, dataset200, tiny_bert, option):
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", f"child={tiny_bert}",
                                  option, "child=missing", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "'missing'" in r.output and "'child'" in r.output and option in r.output
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("content, problem", [(None, "no such report.json"), ("{\n  \"dataset\": ,", "line 2: not JSON"),
                                              ("[1, 2]", "not an `effir bench` report.json")])
def test_bench_refuses_a_bad_beside_report(tmp_path, dataset200, tiny_bert, content, problem):
    beside = tmp_path / "other.json"
    if content is not None:
        beside.write_text(content)
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", str(tiny_bert),
                                  "--beside", str(beside), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and str(beside) in r.output and problem in r.output
    assert not (tmp_path / "b").exists()


def test_bench_refuses_two_systems_with_one_name(tmp_path, dataset200, tiny_bert):
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", f"{tiny_bert},{tiny_bert}",
                                  "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "two systems named" in r.output


@LUCENE
def test_hybrid_row_is_the_rrf_of_its_halves(tmp_path, dataset200, tiny_bert):
    from effir.core.trec import read_trec_run
    from effir.eval.metrics import evaluate
    from effir.search.fusion import fuse

    out = tmp_path / "hb"
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", f"bm25+{tiny_bert}",
                                  "--out", str(out), "--timing-docs", "10", "--timing-queries", "3", "--rounds", "1"])
    assert r.exit_code == 0, r.output
    rows = {s["name"]: s for s in json.loads((out / "report.json").read_text())["systems"]}
    hybrid = rows[f"bm25+{tiny_bert.name}"]
    assert set(rows) == {"bm25", tiny_bert.name, hybrid["name"]} and hybrid["kind"] == "hybrid"
    fused, _ = fuse([read_trec_run(rows["bm25"]["run"]), read_trec_run(rows[tiny_bert.name]["run"])], "rrf")
    from effir.core.data import BeirDataset

    expected = evaluate({q: dict(h) for q, h in fused.items()}, BeirDataset(dataset200).qrels("test"))
    assert hybrid["ndcg@10"] == expected["ndcg@10"]
    dense = rows[tiny_bert.name]
    assert hybrid["search_p50_ms"] == pytest.approx(rows["bm25"]["search_p50_ms"] + dense["search_p50_ms"]
                                                    + dense["query_encode_p50_ms"], abs=1e-3)
    # the speed table lists encoders: the fused run's is its dense half's row, not a row of dashes of its own
    speed_table = (out / "report.md").read_text().split("## Model cost and speed")[1].split("## ")[0]
    assert f"| {tiny_bert.name} |" in speed_table and f"| {hybrid['name']} |" not in speed_table
    assert "–×" not in speed_table


@LUCENE
def test_bench_over_several_collections(tmp_path, dataset200, tiny_bert):
    """Quality on each collection and their mean; a --peer row's comparison on every collection, not the first only."""
    import shutil

    from effir.compression.steps import drop

    other = tmp_path / "other"
    shutil.copytree(dataset200, other)
    lines = (other / "qrels" / "test.tsv").read_text().splitlines()
    (other / "qrels" / "test.tsv").write_text("\n".join(lines[:11]) + "\n")  # 10 of the 20 queries judged
    drop(str(tiny_bert), tmp_path / "cut", None, mlp_layers=[1])
    out = tmp_path / "multi"
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--dataset", str(other), "--systems",
                                  f"bm25,{tiny_bert},{tmp_path / 'cut'}", "--peer", f"cut={tiny_bert.name}",
                                  "--out", str(out), "--timing-docs", "10", "--timing-queries", "3", "--rounds", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["datasets"] == ["d200", "other"]
    for s in report["systems"]:
        per = s["per_dataset"]
        alone = json.loads((out / "systems" / "other" / s["name"] / "metrics.json").read_text())
        assert per["other"]["ndcg@10"] == alone["ndcg@10"] and per["d200"]["ndcg@10"] == s["ndcg@10"]
        assert s["average"]["ndcg@10"] == pytest.approx((per["d200"]["ndcg@10"] + per["other"]["ndcg@10"]) / 2,
                                                        abs=1e-4)
    assert "## Per collection" in (out / "report.md").read_text()
    from effir.eval.report import percent_interval

    rows = {s["name"]: s for s in report["systems"]}
    for name in ("d200", "other"):
        cut, peer = rows["cut"]["per_dataset"][name], rows[tiny_bert.name]["per_dataset"][name]
        low, high = cut["retention_vs_peer_ci95"]
        assert low is None or low <= cut["retention_vs_peer"] <= high  # None: the peer's mean not clearly above 0
        assert (f"| cut | {tiny_bert.name} | {name} | {cut['ndcg@10']:.4f} | {peer['ndcg@10']:.4f} | "
                f"{100 * cut['retention_vs_peer']:.1f}% ({percent_interval([low, high])}) | "
                f"{cut['p_value_vs_peer']:.4f} |") in (out / "report.md").read_text()
        # the per-collection table: the share of the parent with its interval, as the first table shows it
        per_collection = (out / "report.md").read_text().split("## Per collection")[1]
        assert (f"{cut['ndcg@10']:.4f} ({100 * cut['retention']:.1f}% "
                f"({percent_interval(cut['retention_ci95'])}))") in per_collection


def test_bench_without_timing(tmp_path, dataset200, tiny_bert):
    """--rounds 0: quality and analytic cost only; nothing timed, so no speed figure in the report."""
    from effir.compression.steps import drop

    compressed = tmp_path / "tiny-drop1"
    drop(str(tiny_bert), compressed, None, mlp_layers=[1])
    out = tmp_path / "quality"
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", f"full={tiny_bert},{compressed}",
                                  "--out", str(out), "--rounds", "0", "--control"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["timing"]["docs"] == 0 and report["timing"]["control"] is None
    comp = next(s for s in report["systems"] if s["name"] == "tiny-drop1")
    assert comp["retention"] is not None and comp["flops_ratio"] > 1.0
    assert all(s[k] is None for s in report["systems"] for k in ("doc_speedup", "query_speedup", "docs_per_s"))
    md = (out / "report.md").read_text()
    assert "Not timed (`--rounds 0`)" in md
    # no throughput axis to plot against: the plot is nDCG@10 bars, and the report says so
    assert "![nDCG@10 (not timed)](pareto.png)" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tiny-drop1 | " in md.split("## Model cost and speed")[1].split("## Index")[0]  # its analytic cost
    # a report folder copied without its plot: `effir replot` draws it again from report.json, report.md untouched
    (out / "pareto.png").unlink()
    r = CliRunner().invoke(main, ["replot", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "report.md").read_text() == md
    assert not list(out.glob("*.tmp"))
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "report.json").write_text('{"dataset": "d200", "reference": "full", "systems": [{"nmae": 1}]}')
    r = CliRunner().invoke(main, ["replot", str(tmp_path / "copied"), str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and str(tmp_path / "copied" / "report.json") in r.output and "nmae" in r.output
    assert not (tmp_path / "copied" / "pareto.png").exists()
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", str(tiny_bert),
                                  "--out", str(tmp_path / "bad"), "--rounds", "-1"])
    assert r.exit_code != 0 and "--rounds" in r.output


def test_bench_speed_only(tmp_path, dataset200, tiny_bert):
    """--speed-only: the timing (with its control pair) and model cost of every encoder, no corpus encoded; BM25,
    which has no encoder, is left out; --rounds 0 or --beside with it is refused. Each row names its precision."""
    from effir.compression.baselines import quantize_folder
    from effir.compression.steps import drop

    compressed = tmp_path / "tiny-drop1"
    drop(str(tiny_bert), compressed, None, mlp_layers=[1])
    quantize_folder(str(compressed), tmp_path / "tiny-drop1-bf16", "bf16")
    out, work = tmp_path / "speed", tmp_path / "work"
    systems = f"bm25,full={tiny_bert},{compressed},again={tmp_path / 'tiny-drop1-bf16'}"
    args = ["bench", "--dataset", str(dataset200), "--systems", systems, "--out", str(out), "--work", str(work),
            "--speed-only", "--control", "--rounds", "2", "--timing-docs", "16", "--timing-queries", "8",
            "--timing-group", "1", "--threads", "1"]  # fixed: left free, the idle cores (a kept group's key) vary
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert not work.exists() and not (out / "per_query.json").exists()  # nothing encoded, no quality
    report = json.loads((out / "report.json").read_text())
    assert report["speed_only"] and report["reference"] == "full"
    assert [s["name"] for s in report["systems"]] == ["full", "tiny-drop1", "again"]
    comp = report["systems"][1]
    assert comp["ndcg@10"] is None and comp["parent"] == "full" and comp["flops_ratio"] > 1.0
    assert len(comp["rounds_s"]["doc"]) == 2 and comp["doc_speedup"] > 0
    # one timing group per system (--timing-group 1), each with its own control reading
    timing = report["timing"]
    assert [g["systems"] for g in timing["groups"]] == [["tiny-drop1"], ["again"]] and timing["group_size"] == 1
    assert [s["timing_group"] for s in report["systems"]] == [None, 1, 2]
    assert len(report["systems"][0]["rounds_s"]["doc"]) == 4  # the reference's rounds of both groups
    assert set(timing["control"]) >= {"doc", "query", "query_batch", "ok"}
    assert all(set(g["control"]) >= {"doc", "ok"} for g in timing["groups"])
    md = (out / "report.md").read_text()
    assert "## Quality" not in md and "## Index" not in md and "| tiny-drop1 | " in md
    assert "in groups of at most 1 system," in md and "- timing group 2 (again): control " in md
    assert [s["precision"] for s in report["systems"]] == ["fp32", "fp32", "bf16"]
    assert "Precision: fp32, bf16 (each system's in the speed table)." in md
    assert [line.split(" | ")[4] for line in md.splitlines() if line.startswith("| again | ")] == ["bf16"]
    assert [g["kept"] for g in timing["groups"]] == [False, False] and "kept from an earlier run" not in md
    # the same bench again: both groups' times read back, not timed again, and the report says when they were timed
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rerun = json.loads((out / "report.json").read_text())
    assert [g["kept"] for g in rerun["timing"]["groups"]] == [True, True]
    assert [s["rounds_s"] for s in rerun["systems"]] == [s["rounds_s"] for s in report["systems"]]
    again_md = (out / "report.md").read_text()
    assert "- timing group 2 (again): control " in again_md
    assert f"(timed {timing['groups'][1]['timed_at']}, kept from an earlier run of this bench)" in again_md
    r = CliRunner().invoke(main, ["replot", str(out)])  # nothing to plot without quality
    assert r.exit_code == 2 and "speed-only" in r.output and not (out / "pareto.png").exists()
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", str(tiny_bert),
                                  "--out", str(tmp_path / "none"), "--speed-only", "--rounds", "0"])
    assert r.exit_code != 0 and "--speed-only" in r.output and not (tmp_path / "none").exists()
    r = CliRunner().invoke(main, ["bench", "--dataset", str(dataset200), "--systems", str(tiny_bert), "--out",
                                  str(tmp_path / "none"), "--speed-only", "--beside", str(out / "report.json")])
    assert r.exit_code != 0 and "--beside" in r.output and not (tmp_path / "none").exists()


def test_systems_take_turns_on_every_unit_of_work():
    """Each document batch, single query and query batch is encoded by every system in turn, the order reversing
    from one unit to the next (so load on the machine falls on all alike); a round sums each system's units."""
    from effir.speed import TASKS, interleaved_timing

    calls = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def encode(self, texts, side="passage"):
            calls.append((self.name, len(texts), side))

    docs, queries = [f"doc {i}" for i in range(70)], [f"query {i}" for i in range(40)]
    times = interleaved_timing({n: Recorder(n) for n in "abc"}, docs, queries, rounds=2, query_batch=32, doc_batch=32)
    warm_up, timed = calls[:9], calls[9:]  # one unit of each kind per system first, at the shapes timed
    assert warm_up == [(n, size, side) for n in "abc" for size, side in ((32, "passage"), (1, "query"), (32, "query"))]
    units = [(32, "passage"), (32, "passage"), (6, "passage")] + [(1, "query")] * 40 + [(32, "query"), (8, "query")]
    assert len(timed) == 2 * len(units) * 3
    for k in range(2 * len(units)):
        turn = timed[3 * k: 3 * k + 3]
        assert [name for name, _, _ in turn] == (list("abc") if k % 2 == 0 else list("cba"))
        assert {(n, side) for _, n, side in turn} == {units[k % len(units)]}
    assert all(len(times[n][task]) == 2 and min(times[n][task]) > 0 for n in "abc" for task in TASKS)


def test_groups_are_as_even_as_can_be():
    from effir.speed import groups

    assert groups(list("abcdefg"), 3) == [list("abc"), list("de"), list("fg")]
    assert groups(list("abcd"), 4) == [list("abcd")] and groups([], 4) == [[]]
    assert [len(g) for g in groups([str(i) for i in range(21)], 4)] == [4, 4, 4, 3, 3, 3]
    with pytest.raises(ValueError, match="group size 0"):
        groups(list("ab"), 0)


class NameRecorder:
    """An encoder stand-in for the timing's order: each encode call appends its name to `calls`."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def encode(self, texts, side="passage"):
        self.calls.append(self.name)


def test_many_systems_are_timed_in_groups_each_with_the_reference_and_the_control():
    """Each group is its own interleaved run: the reference first, the group's systems, the control last; a system's
    speedup is against the reference's rounds of its own group."""
    import statistics

    from effir.speed import TASKS, overall_control, timed_in_groups

    calls = []
    Recorder = partial(NameRecorder, calls=calls)

    encoders = {n: Recorder(n) for n in ["ref", "a", "b", "c", "d", "e"]}
    docs, queries = [f"doc {i}" for i in range(8)], [f"query {i}" for i in range(4)]
    figures, groups = timed_in_groups(encoders, "ref", docs, queries, rounds=2, query_batch=2, group_size=2,
                                      control=Recorder("ref-control"))
    assert [g["systems"] for g in groups] == [["a", "b"], ["c", "d"], ["e"]]
    start = 0
    for g in groups:  # per system: 3 warm-up calls, then 2 rounds of 1 document batch, 4 queries, 2 query batches
        members = ["ref", *g["systems"], "ref-control"]
        seen = calls[start: start + len(members) * (3 + 2 * (1 + 4 + 2))]
        assert set(seen) == set(members) and seen[:3 * len(members)] == [n for n in members for _ in range(3)]
        assert seen[3 * len(members):4 * len(members)] == members  # the reference first, the control last
        start += len(seen)
        assert set(g["control"]) >= {"ok", "doc", "query", "query_batch"}
    assert start == len(calls)
    ref = figures["ref"]["rounds_s"]
    assert all(len(ref[task]) == 2 * 3 for task in TASKS)  # the reference's rounds of every group, pooled
    for name, number in {"a": 1, "d": 2, "e": 3}.items():
        own = figures[name]
        assert own["timing_group"] == number
        ratios = [a / b for a, b in zip(ref["doc"][2 * (number - 1): 2 * number], own["rounds_s"]["doc"])]
        assert own["doc_speedup"] == pytest.approx(statistics.median(ratios), rel=1e-2)
    control = overall_control(groups)
    worst = max((g["control"]["doc"] for g in groups), key=lambda x: abs(x - 1))
    assert control["doc"] == worst and control["ok"] == all(g["control"]["ok"] for g in groups)
    assert overall_control([{**g, "control": None} for g in groups]) is None


def test_finished_timing_groups_are_kept_and_a_rerun_resumes_at_the_first_not_finished(tmp_path, monkeypatch):
    """Each finished group's times are written once whole; a rerun with the same systems, sample, settings and code
    reads them back instead of timing them again, and a group whose system changed (or not recorded: the
    run stopped during it) is timed again, as is every group once the code changed."""
    from effir.speed import timed_in_groups

    calls = []
    Recorder = partial(NameRecorder, calls=calls)

    encoders = {n: Recorder(n) for n in ["ref", "a", "b", "c", "d"]}
    fingerprints = dict.fromkeys(encoders, "same")
    docs, queries = [f"doc {i}" for i in range(8)], [f"query {i}" for i in range(4)]

    def timed(prints):
        calls.clear()
        return timed_in_groups(encoders, "ref", docs, queries, rounds=2, query_batch=2, group_size=2,
                               control=Recorder("ref-control"), fingerprints=prints, kept=tmp_path / "timing")

    first, groups = timed(fingerprints)
    recorded = json.loads((tmp_path / "timing" / "stages.json").read_text())
    assert [g["kept"] for g in groups] == [False, False] and len(recorded) == 2
    again, groups = timed(fingerprints)
    assert calls == [] and again == first and [g["kept"] for g in groups] == [True, True]
    assert [g["timed_at"] for g in groups] == [g["timed_at"] for g in timed(fingerprints)[1]]
    _, groups = timed({**fingerprints, "c": "changed"})  # c is in the second group
    assert set(calls) == {"ref", "c", "d", "ref-control"} and [g["kept"] for g in groups] == [True, False]
    (tmp_path / "timing" / "stages.json").unlink()
    timed(fingerprints)
    assert set(calls) == set(encoders) | {"ref-control"}
    timed(None)  # no fingerprints: nothing kept or read
    assert set(calls) == set(encoders) | {"ref-control"}
    timed(fingerprints)
    assert calls == []
    monkeypatch.setattr("effir.speed._code_digest", lambda: "changed")
    _, groups = timed(fingerprints)
    assert set(calls) == set(encoders) | {"ref-control"} and [g["kept"] for g in groups] == [False, False]


def test_terminal_table_keeps_its_columns_for_long_names():
    from effir.eval.report import terminal_table

    rows = [SystemResult(name=n, kind="full", model="m", ndcg_10=0.5, recall_100=0.8, mrr_10=0.4, queries=3)
            for n in ("short", "smollm2-effir-2x-gact-mixed-3k-r64")]
    lines = terminal_table({"systems": rows}).splitlines()
    assert len({line.index("0.5000") for line in lines[2:]}) == 1


def test_parents_are_followed_through_committed_artefacts(tmp_path):
    """A folder rebuilt from models/<system> stands for that artefact and was made from the artefact's base: a cut
    from a trained parent finds the parent's rebuilt folder, through artefacts not in the run as well."""
    from types import SimpleNamespace

    from effir.systems import resolve_parents

    def artefact(name, base):
        folder = tmp_path / "models" / name
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"system": name, "base": base}))
        return str(folder)

    def rebuilt(name, artefact_folder, base):
        folder = tmp_path / "rebuilt" / name
        folder.mkdir(parents=True)
        (folder / "effir.json").write_text(json.dumps(
            {"made_from": "hub-base", "rebuilt_from": {"artefact": artefact_folder, "base": base}}))
        return SimpleNamespace(name=name, model=str(folder), parent=None)

    ft = artefact("ft", "hub-base")
    ft2 = artefact("ft2", ft)  # ft trained again: not in the first run
    cut = artefact("cut", ft2)  # ft2 cut
    rows = [rebuilt("ft", ft, "hub-base"), rebuilt("cut", cut, ft2),
            SimpleNamespace(name="bm25", model="pyserini-lucene-bm25", parent=None)]
    resolve_parents(rows, {})
    assert [r.parent for r in rows] == [None, "ft", None]
    rows.append(rebuilt("ft2", ft2, ft))
    resolve_parents(rows, {})
    assert [r.parent for r in rows] == [None, "ft2", None, "ft"]
    resolve_parents(rows, {"cut": "ft"})  # --parent wins
    assert rows[1].parent == "ft"


def test_the_cli_prints_each_log_line_once_when_the_root_logger_has_a_handler():
    """Importing pyserini (for BM25) calls logging.basicConfig; effir's lines go to the CLI's handler alone, not to
    the root's as well, or every line of a bench's log would show twice."""
    import io
    import logging

    root_stream = io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)  # what pyserini's import does
    try:
        main.callback(debug=False)
        logging.getLogger("effir.speed").info("timing round 1/1")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert "timing round" not in root_stream.getvalue()


def test_every_committed_report_reads_back_and_has_its_plot():
    """`effir replot` reads a report.json an earlier effir wrote: every committed copy under reports/ reads back as
    rows (a field dropped from SystemResult would make them unreadable), and every copied report.md that links its
    plot has it beside it."""
    from pathlib import Path

    from effir.eval.report import read_report

    reports = sorted((Path(__file__).parent.parent / "reports").rglob("report.json"))
    assert reports
    for path in reports:
        report = read_report(path)
        assert report["systems"], path
        linked = "(pareto.png)" in (path.parent / "report.md").read_text()
        assert not linked or (path.parent / "pareto.png").is_file(), f"{path.parent}: pareto.png missing"
