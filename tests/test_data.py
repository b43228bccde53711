"""Bad input: every case names the file, the line and the problem, and leaves no partial output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from effir.cli import main
from effir.core.data import BeirDataset, Corpus, DatasetError, read_qrels, read_queries

GOOD = [{"_id": "a", "title": "T", "text": "alpha"}, {"_id": "b", "title": "", "text": ""}]


def _write(path, lines):
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else (line + "\n").encode())
    return path


def _corpus_with(tmp_path, bad_line):
    return _write(tmp_path / "corpus.jsonl", [json.dumps(GOOD[0]), bad_line, json.dumps(GOOD[1])])


CASES = {
    "malformed JSON": ('{"_id": "x", "text": ', "malformed JSON"),
    "missing _id": ('{"title": "no id", "text": "t"}', "missing `_id`"),
    "duplicate id": ('{"_id": "a", "text": "again"}', "duplicate document id 'a'"),
    "invalid UTF-8": (b'{"_id": "u", "text": "\xff\xfe"}\n', "invalid UTF-8"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "id with space": ('{"_id": "a b", "text": "t"}', "contains whitespace"),
}


@pytest.mark.parametrize("case", CASES)
def test_corpus_errors_name_file_line_problem(tmp_path, case):
    line, problem = CASES[case]
    path = _corpus_with(tmp_path, line)
    with pytest.raises(DatasetError) as err:
        Corpus(path).validate()
    assert err.value.line == 2
    assert str(path) in str(err.value) and ":2: " in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("case", CASES)
def test_encode_stops_before_writing_anything(tmp_path, tiny_bert, case):
    line, problem = CASES[case]
    path = _corpus_with(tmp_path, line)
    out = tmp_path / "shards"
    res = CliRunner().invoke(main, ["encode", "--model", str(tiny_bert), "--corpus", str(path), "--out", str(out)])
    assert res.exit_code != 0
    assert f"{path}:2: " in res.output and problem in res.output
    assert not out.exists()


def test_skip_bad_writes_sidecar_and_goes_on(tmp_path, tiny_bert):
    path = _corpus_with(tmp_path, '{"_id": "x", "text": ')
    out = tmp_path / "shards"
    res = CliRunner().invoke(main, ["encode", "--model", str(tiny_bert), "--corpus", str(path), "--out", str(out),
                                    "--skip-bad"])
    assert res.exit_code == 0, res.output
    rejected = [json.loads(line) for line in open(out / "rejected.jsonl")]
    assert len(rejected) == 1 and rejected[0]["line"] == 2 and "malformed JSON" in rejected[0]["problem"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["corpus_count"] == 2 and manifest["complete"]


def test_empty_text_is_allowed(tmp_path):
    path = _write(tmp_path / "c.jsonl", [json.dumps(d) for d in GOOD])
    docs = list(Corpus(path).validate())
    assert [d.docid for d in docs] == ["a", "b"] and docs[1].contents == ""


def test_json_collection_is_accepted(tmp_path):
    path = _write(tmp_path / "c.jsonl", ['{"id": "p1", "contents": "hello world"}', '{"id": 7, "contents": ""}'])
    docs = list(Corpus(path).validate())
    assert [(d.docid, d.contents) for d in docs] == [("p1", "hello world"), ("7", "")]


def test_queries_errors(tmp_path):
    path = _write(tmp_path / "q.jsonl", ['{"_id": "1", "text": "a"}', '{"_id": "1", "text": "b"}'])
    with pytest.raises(DatasetError, match=r"q.jsonl:2: duplicate query id '1'"):
        read_queries(path)


def test_qrels_unknown_document_and_query(tmp_path):
    path = _write(tmp_path / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\tnope\t1"])
    with pytest.raises(DatasetError, match=r"test.tsv:3: corpus-id 'nope' is not in the corpus"):
        read_qrels(path, doc_ids={"d1"})
    path = _write(tmp_path / "test2.tsv", ["query-id\tcorpus-id\tscore", "q9\td1\t1"])
    with pytest.raises(DatasetError, match=r"test2.tsv:2: query-id 'q9' is not in the queries file"):
        read_qrels(path, doc_ids={"d1"}, query_ids={"q1"})
    path = _write(tmp_path / "test3.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\thigh"])
    with pytest.raises(DatasetError, match=r"test3.tsv:2: score 'high' is not a number"):
        read_qrels(path)


def test_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="corpus.jsonl: file not found"):
        Corpus(tmp_path / "corpus.jsonl")
    with pytest.raises(DatasetError, match="dataset folder not found"):
        BeirDataset(tmp_path / "nowhere")
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetError, match="queries.jsonl: file not found"):
        BeirDataset(tmp_path / "ds").queries()
    res = CliRunner().invoke(main, ["eval", "--run", str(tmp_path / "run.trec"), "--qrels", str(tmp_path / "q.tsv")])
    assert res.exit_code != 0 and "file not found" in res.output
