"""A user's mistake gets one line `error: ...` (or click's usage error) and exit code 2, no traceback, and what
was written before is left as it was."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from effir.cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bert):
    """A tiny dataset, its shards and a Flat index, made once: the prior outputs every case must leave alone."""
    from tests.conftest import write_corpus

    root = tmp_path_factory.mktemp("bad")
    data = root / "data"
    (data / "qrels").mkdir(parents=True)
    write_corpus(data / "corpus.jsonl", 30)
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"topic {i}"}) + "\n"
                                                for i in range(4)))
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(4)))
    (root / "bad.trec").write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 not-a-number tag\n")
    (root / "corpus-bad.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    for args in (["encode", "-m", str(tiny_bert), "--corpus", str(data / "corpus.jsonl"), "--out", str(root / "shards")],
                 ["index", "--shards", str(root / "shards"), "--out", str(root / "index")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
    return root


def _digest(folder) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


CASES = {
    # flag out of range or in conflict
    "factory not parsed": (["index", "--shards", "{shards}", "--out", "{index}", "--factory", "NotAFactory"],
                           "--factory 'NotAFactory'"),
    "PQ size does not divide the dimension": (["index", "--shards", "{shards}", "--out", "{index}", "--factory",
                                               "IVF2,PQ7"], "multiple"),
    "k is zero": (["search", "--index", "{index}", "-m", "{bert}", "--queries", "{data}/queries.jsonl", "--out",
                   "{root}/r.trec", "--k", "0"], "--k"),
    "k is negative": (["search", "--index", "{index}", "-m", "{bert}", "--queries", "{data}/queries.jsonl", "--out",
                       "{root}/r.trec", "--k", "-5"], "--k"),
    "model of another dimension": (["search", "--index", "{index}", "-m", "minilm", "--queries",
                                    "{data}/queries.jsonl", "--out", "{root}/r.trec"], "384-d"),
    "bm25 as the speed reference": (["bench", "--dataset", "{data}", "--systems", "bm25,{bert}", "--reference", "bm25",
                                     "--out", "{root}/bench"], "--reference 'bm25'"),
    "two systems with one name": (["bench", "--dataset", "{data}", "--systems", "{bert},{bert}", "--out",
                                   "{root}/bench"], "two systems named"),
    "parent not in the run": (["bench", "--dataset", "{data}", "--systems", "x={bert}", "--parent", "x=y", "--out",
                               "{root}/bench"], "'y'"),
    "unreachable budget": (["compress", "plan", "-m", "{bert}", "--dataset", "{data}", "--target-speedup", "0.5"],
                           "--target-speedup 0.5"),
    # malformed or missing files
    "run file with a bad score": (["eval", "--run", "{root}/bad.trec", "--qrels", "{data}/qrels/test.tsv"],
                                  "bad.trec:2"),
    "duplicate corpus id": (["encode", "-m", "{bert}", "--corpus", "{root}/corpus-bad.jsonl", "--out",
                             "{root}/shards"], "corpus-bad.jsonl:2"),
    "artefact folder without manifest": (["compress", "rebuild", "{data}", "--out", "{root}/rebuilt"],
                                         "manifest.json: missing"),
    "index folder without index": (["search", "--index", "{data}", "-m", "{bert}", "--queries",
                                    "{data}/queries.jsonl", "--out", "{root}/r.trec"], "index.faiss: missing"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(built, tiny_bert, case):
    args, names = CASES[case]
    fill = {"root": built, "data": built / "data", "shards": built / "shards", "index": built / "index",
            "bert": tiny_bert}
    before = {name: _digest(built / name) for name in ("shards", "index")}
    r = CliRunner().invoke(main, [a.format(**fill) for a in args])
    assert r.exit_code == 2, (case, r.output, r.exception)
    assert names in r.output, (case, r.output)
    assert "Traceback" not in r.output and not isinstance(r.exception, (AssertionError, KeyError, TypeError))
    assert {name: _digest(built / name) for name in ("shards", "index")} == before
    assert not (built / "r.trec").exists() and not (built / "rebuilt").exists()


def test_debug_shows_the_traceback(built):
    r = CliRunner().invoke(main, ["--debug", "index", "--shards", str(built / "shards"), "--out",
                                  str(built / "index"), "--factory", "NotAFactory"])
    assert r.exit_code == 1 and r.exception is not None and "NotAFactory" in str(r.exception)
