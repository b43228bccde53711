"""Arbitrary bytes into every reader of user files give a valid parse or the clean `DatasetError` naming the file,
never another exception (hypothesis generates the bytes, biased towards almost-valid lines)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from effir.core.data import Corpus, DatasetError, read_qrels, read_queries
from effir.core.trec import read_trec_run

TOKENS = st.sampled_from([b"q1", b"d1", b"Q0", b"1", b"0.5", b"-3", b"nan", b"inf", b"1e400", b"\t", b" ", b"\n",
                          b"\r\n", b"\xff", b"\xc3", b"\x00", b"query-id", b'"', b"{", b"}", b":", b",", b"[", b"]",
                          b'"_id"', b'"text"', b'"title"', b"null", b"true", b"\xef\xbb\xbf"])
CONTENT = st.one_of(st.binary(max_size=300), st.lists(TOKENS, max_size=60).map(b"".join),
                    st.lists(st.dictionaries(st.sampled_from(["_id", "id", "text", "title", "contents", "x"]),
                                             st.one_of(st.text(max_size=8), st.integers(), st.none(),
                                                       st.lists(st.integers(), max_size=2)), max_size=4),
                             max_size=5).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(reader, content: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(content)
        try:
            reader(path)
        except DatasetError as e:
            assert str(path) in str(e)


@FUZZ
@given(CONTENT)
def test_corpus_reader(content):
    _check(lambda p: list(Corpus(p)), content, ".jsonl")


@FUZZ
@given(CONTENT)
def test_queries_reader(content):
    _check(read_queries, content, ".jsonl")


@FUZZ
@given(CONTENT)
@example(b"query-id\tcorpus-id\tscore\nq1\td1\tinf\n")
def test_qrels_reader(content):
    _check(read_qrels, content, ".tsv")


@FUZZ
@given(CONTENT)
@example(b"\x80")
@example(b"q1 Q0 d1 1 nan t\n")
def test_trec_run_reader(content):
    _check(read_trec_run, content, ".trec")
