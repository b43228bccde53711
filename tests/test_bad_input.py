"""A user's mistake gets one line `error: ...` (or click's usage error) and exit code 2, no traceback, and what
was written before is left as it was."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from effir.cli import main


# files that are wrong in one way each (line 2 unless the name says otherwise)
BAD_FILES = {
    "bad.trec": b"q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 not-a-number tag\n",
    "corpus-bad.jsonl": b'{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n',
    "empty.jsonl": b"",
    "corpus-truncated.jsonl": b'{"_id": "a", "text": "x"}\n{"_id": "b", "te',
    "corpus-latin1.jsonl": b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "caf\xe9"}\n',
    "corpus-noid.jsonl": b'{"_id": "a", "text": "x"}\n{"text": "no id"}\n',
    "corpus-list.jsonl": b'{"_id": "a", "text": "x"}\n["a", "list"]\n',
    "queries-dup.jsonl": b'{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n',
    "qrels-bad.tsv": b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\thigh\n",  # line 3
    "qrels-short.tsv": b"query-id\tcorpus-id\tscore\nq1\td1\n",
    "run-latin1.trec": b"q1 Q0 d1 1 0.5 t\nq1 Q0 d\xe9 2 0.4 t\n",
    "run-short.trec": b"q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2\n",
    "run-a.trec": b"q1 Q0 d1 1 0.5 a\nq2 Q0 d2 1 0.5 a\n",  # fine alone; shares no query with run-b
    "run-b.trec": b"z1 Q0 d1 1 0.5 b\nz2 Q0 d2 1 0.5 b\n",
    "texts.txt": b"",
}


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
    for name, content in BAD_FILES.items():
        (root / name).write_bytes(content)
    (root / "no-corpus" / "qrels").mkdir(parents=True)
    (root / "no-corpus" / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n')
    (root / "no-shards").mkdir()
    for args in (["encode", "-m", str(tiny_bert), "--corpus", str(data / "corpus.jsonl"), "--out", str(root / "shards")],
                 ["index", "--shards", str(root / "shards"), "--out", str(root / "index")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
    (root / "dup-data" / "qrels").mkdir(parents=True)
    (root / "dup-data" / "corpus.jsonl").write_text((root / "corpus-bad.jsonl").read_text())
    (root / "dup-data" / "queries.jsonl").write_text((data / "queries.jsonl").read_text())
    (root / "dup-data" / "qrels" / "test.tsv").write_text((data / "qrels" / "test.tsv").read_text())
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
    "peer without its pair": (["bench", "--dataset", "{data}", "--systems", "x={bert}", "--peer", "x", "--out",
                               "{root}/bench"], "--peer 'x': expected CHILD=PEER"),
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
    # encode: every way a corpus line can be wrong, and flags
    "empty corpus": (["encode", "-m", "{bert}", "--corpus", "{root}/empty.jsonl", "--out", "{root}/shards"],
                     "empty.jsonl"),
    "truncated corpus line": (["encode", "-m", "{bert}", "--corpus", "{root}/corpus-truncated.jsonl", "--out",
                               "{root}/shards"], "corpus-truncated.jsonl:2"),
    "non-UTF-8 corpus": (["encode", "-m", "{bert}", "--corpus", "{root}/corpus-latin1.jsonl", "--out",
                          "{root}/shards"], "corpus-latin1.jsonl:2"),
    "corpus line without an id": (["encode", "-m", "{bert}", "--corpus", "{root}/corpus-noid.jsonl", "--out",
                                   "{root}/shards"], "corpus-noid.jsonl:2"),
    "corpus line not an object": (["encode", "-m", "{bert}", "--corpus", "{root}/corpus-list.jsonl", "--out",
                                   "{root}/shards"], "corpus-list.jsonl:2"),
    "missing corpus": (["encode", "-m", "{bert}", "--corpus", "{root}/nope.jsonl", "--out", "{root}/shards"],
                       "nope.jsonl"),
    "unknown model": (["encode", "-m", "no-such-model", "--corpus", "{data}/corpus.jsonl", "--out", "{root}/shards"],
                      "no-such-model"),
    "zero shard size": (["encode", "-m", "{bert}", "--corpus", "{data}/corpus.jsonl", "--out", "{root}/shards",
                         "--shard-size", "0"], "--shard-size"),
    "zero tokens per batch": (["encode", "-m", "{bert}", "--corpus", "{data}/corpus.jsonl", "--out",
                               "{root}/shards", "--max-tokens", "0"], "--max-tokens"),
    # index
    "shard folder without shards": (["index", "--shards", "{root}/no-shards", "--out", "{root}/index2"],
                                    "no-shards"),
    "unknown pooling": (["encode", "-m", "{bert}", "--corpus", "{data}/corpus.jsonl", "--out", "{root}/shards",
                         "--pooling", "max"], "--pooling"),
    # search
    "duplicate query id": (["search", "--index", "{index}", "-m", "{bert}", "--queries", "{root}/queries-dup.jsonl",
                            "--out", "{root}/r.trec"], "queries-dup.jsonl:2"),
    "rerank depth below k": (["search", "--index", "{index}", "-m", "{bert}", "--queries", "{data}/queries.jsonl",
                              "--out", "{root}/r.trec", "--k", "10", "--rerank", "5"], "--rerank"),
    "rerank depth zero": (["search", "--index", "{index}", "-m", "{bert}", "--queries", "{data}/queries.jsonl",
                           "--out", "{root}/r.trec", "--rerank", "0"], "--rerank"),
    "neither queries nor query": (["search", "--index", "{index}", "-m", "{bert}"], "--queries"),
    "queries without an out file": (["search", "--index", "{index}", "-m", "{bert}", "--queries",
                                     "{data}/queries.jsonl"], "--out"),
    # eval
    "qrels with a bad relevance": (["eval", "--run", "{root}/run-a.trec", "--qrels", "{root}/qrels-bad.tsv"],
                                   "qrels-bad.tsv:3"),
    "qrels line too short": (["eval", "--run", "{root}/run-a.trec", "--qrels", "{root}/qrels-short.tsv"],
                             "qrels-short.tsv:2"),
    "non-UTF-8 run file": (["eval", "--run", "{root}/run-latin1.trec", "--qrels", "{data}/qrels/test.tsv"],
                           "run-latin1.trec:2"),
    "run line too short": (["eval", "--run", "{root}/run-short.trec", "--qrels", "{data}/qrels/test.tsv"],
                           "run-short.trec:2"),
    "missing qrels": (["eval", "--run", "{root}/run-a.trec", "--qrels", "{root}/nope.tsv"], "nope.tsv"),
    # bm25
    "bm25 over a duplicate-id corpus": (["bm25", "--dataset", "{root}/dup-data", "--out", "{root}/r.trec"],
                                        "corpus.jsonl:2"),
    "bm25 split without qrels": (["bm25", "--dataset", "{data}", "--out", "{root}/r.trec", "--split", "dev"],
                                 "dev.tsv"),
    "bm25 with k zero": (["bm25", "--dataset", "{data}", "--out", "{root}/r.trec", "--k", "0"], "--k"),
    # fuse
    "one run to fuse": (["fuse", "--run", "{root}/run-a.trec", "--out", "{root}/r.trec"], "at least two runs"),
    "runs with no query in common": (["fuse", "--run", "{root}/run-a.trec", "--run", "{root}/run-b.trec", "--out",
                                      "{root}/r.trec"], "no query"),
    "weights that do not match the runs": (["fuse", "--run", "{root}/run-a.trec", "--run", "{root}/run-a.trec",
                                            "--method", "interp", "--weights", "0.5", "--out", "{root}/r.trec"],
                                           "--weights"),
    "weights that are not numbers": (["fuse", "--run", "{root}/run-a.trec", "--run", "{root}/run-a.trec",
                                      "--method", "interp", "--weights", "a,b", "--out", "{root}/r.trec"],
                                     "--weights"),
    "malformed run to fuse": (["fuse", "--run", "{root}/run-a.trec", "--run", "{root}/bad.trec", "--out",
                               "{root}/r.trec"], "bad.trec:2"),
    # run and bench
    "dataset without a corpus": (["run", "--dataset", "{root}/no-corpus", "-m", "{bert}", "--out", "{root}/run"],
                                 "corpus.jsonl"),
    "run split without qrels": (["run", "--dataset", "{data}", "-m", "{bert}", "--out", "{root}/run", "--split",
                                 "dev"], "dev.tsv"),
    "bench with no systems": (["bench", "--dataset", "{data}", "--systems", "", "--out", "{root}/bench"],
                              "--systems"),
    "bench with an unknown system": (["bench", "--dataset", "{data}", "--systems", "bm25,no-such-model", "--out",
                                      "{root}/bench"], "no-such-model"),
    # compress: each subcommand
    "analyze without calibration text": (["compress", "analyze", "-m", "{bert}", "--out", "{root}/c"],
                                         "--dataset"),
    "analyze with empty calibration text": (["compress", "analyze", "-m", "{bert}", "--texts", "{root}/texts.txt",
                                             "--out", "{root}/c"], "texts.txt"),
    "drop more sublayers than exist": (["compress", "drop", "-m", "{bert}", "--mlp", "9", "--dataset", "{data}",
                                        "--out", "{root}/c"], "--mlp"),
    "drop a layer that does not exist": (["compress", "drop", "-m", "{bert}", "--mlp-layers", "7", "--out",
                                          "{root}/c"], "--mlp-layers"),
    "effir drop fraction above 1": (["compress", "effir", "-m", "{bert}", "--dataset", "{data}", "--drop-fraction",
                                     "1.5", "--out", "{root}/c"], "--drop-fraction"),
    "export a folder that was not trained": (["compress", "export", "{bert}", "--base", "{bert}", "--dataset",
                                              "{data}", "--out", "{root}/c"], "adapter"),
    "info on a folder without a model": (["compress", "info", "{root}/no-shards"], "no config.json"),
    "nsvd keeping nothing": (["compress", "nsvd", "-m", "{bert}", "--keep", "0", "--dataset", "{data}", "--out",
                              "{root}/c"], "--keep"),
    "unknown quantisation": (["compress", "quantize", "-m", "{bert}", "--method", "int3", "--out", "{root}/c"],
                             "--method"),
    "shadow keeping no heads": (["compress", "shadow", "-m", "{bert}", "--dataset", "{data}", "--head-keep", "0",
                                 "--out", "{root}/c"], "--head-keep"),
    "slim removing all width": (["compress", "slim", "-m", "{bert}", "--dataset", "{data}", "--reduction", "1.0",
                                 "--out", "{root}/c"], "--reduction"),
    "sparsegpt ratio 1": (["compress", "sparsegpt", "-m", "{bert}", "--ratio", "1.0", "--dataset", "{data}",
                           "--out", "{root}/c"], "--ratio"),
    "train on the test split": (["compress", "train", "-m", "{bert}", "--dataset", "{data}", "--split", "test",
                                 "--out", "{root}/c"], "test"),
    "train on a split without qrels": (["compress", "train", "-m", "{bert}", "--dataset", "{data}", "--split",
                                        "train", "--out", "{root}/c"], "train.tsv"),
    "train with nothing to learn": (["compress", "train", "-m", "{bert}", "--dataset", "{data}", "--split", "train",
                                     "--contrastive-weight", "0", "--out", "{root}/c"], "--distill-from"),
    "gates imitating no teacher": (["compress", "effir", "-m", "{bert}", "--dataset", "{data}", "--slim-loss",
                                    "distill", "--out", "{root}/c"], "--distill-from"),
    "wanda negative ratio": (["compress", "wanda", "-m", "{bert}", "--ratio", "-0.1", "--dataset", "{data}",
                              "--out", "{root}/c"], "--ratio"),
    "wanda bad N:M": (["compress", "wanda", "-m", "{bert}", "--nm", "4:2", "--dataset", "{data}", "--out",
                       "{root}/c"], "--nm"),
    "download an unknown dataset": (["download", "no-such-set", "--out", "{root}/dl"], "no-such-set"),
}


WRITTEN = ("r.trec", "rebuilt", "c", "run", "bench", "index2", "dl")  # the outputs the cases name


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(built, tiny_bert, case):
    args, names = CASES[case]
    fill = {"root": built, "data": built / "data", "shards": built / "shards", "index": built / "index",
            "bert": tiny_bert}
    for written in WRITTEN:  # a case that wrongly wrote must not fail the next ones
        shutil.rmtree(built / written, ignore_errors=True)
        (built / written).unlink(missing_ok=True)
    before = {name: _digest(built / name) for name in ("shards", "index")}
    r = CliRunner().invoke(main, [a.format(**fill) for a in args])
    assert r.exit_code == 2, (case, r.output, r.exception)
    assert names in r.output, (case, r.output)
    assert "Traceback" not in r.output and not isinstance(r.exception, (AssertionError, KeyError, TypeError))
    assert {name: _digest(built / name) for name in ("shards", "index")} == before
    for written in WRITTEN:
        assert not (built / written).exists(), (case, written)


def test_debug_shows_the_traceback(built):
    r = CliRunner().invoke(main, ["--debug", "index", "--shards", str(built / "shards"), "--out",
                                  str(built / "index"), "--factory", "NotAFactory"])
    assert r.exit_code == 1 and r.exception is not None and "NotAFactory" in str(r.exception)
