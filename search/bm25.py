"""Lucene BM25 (flat: title + " " + text) through Pyserini, over a JsonCollection written from the corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from effir.core.data import Corpus
from effir.core.files import atomic_path


def write_json_collection(corpus: Corpus, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "docs.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for doc in corpus:
            f.write(json.dumps({"id": doc.docid, "contents": doc.contents}, ensure_ascii=False) + "\n")


def build_lucene_index(corpus: Corpus, work: Path, threads: int = 2) -> Path:
    """Index `corpus` into work/lucene (reused when the corpus fingerprint matches)."""
    from effir.search.jvm import start_jvm

    start_jvm()
    from jnius import autoclass

    index_dir, stamp = work / "lucene", work / "lucene.corpus"
    fingerprint = corpus.fingerprint()
    if index_dir.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return index_dir
    collection = work / "collection"
    write_json_collection(corpus, collection)
    with atomic_path(index_dir) as tmp:
        autoclass("io.anserini.index.IndexCollection").main([
            "-collection", "JsonCollection", "-input", str(collection), "-index", str(tmp),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
            "-storePositions", "-storeDocvectors", "-storeRaw", "-quiet",
        ])
    stamp.write_text(fingerprint)
    shutil.rmtree(collection)
    return index_dir


def lucene_searcher(index_dir: Path, k1: float, b: float):
    from effir.search.jvm import start_jvm

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    return searcher


def _ranked(hits, qid, k, remove_query):
    ranked = [(h.docid, float(h.score)) for h in hits]
    if remove_query:
        ranked = [r for r in ranked if r[0] != qid]
    return ranked[:k]


def bm25_search(index_dir: Path, queries: dict[str, str], k: int = 1000, k1: float = 0.9, b: float = 0.4,
                threads: int = 2, remove_query: bool = False) -> dict[str, list[tuple[str, float]]]:
    searcher = lucene_searcher(index_dir, k1, b)
    qids = list(queries)
    hits = searcher.batch_search([queries[q] for q in qids], qids, k=k + remove_query, threads=threads)
    return {qid: _ranked(hits.get(qid, []), qid, k, remove_query) for qid in qids}


def bm25_search_timed(index_dir: Path, queries: dict[str, str], k: int = 1000, k1: float = 0.9, b: float = 0.4,
                      remove_query: bool = False):
    """One query at a time, as an online system would: (results, per-query latency summary)."""
    import time

    from effir.core.timing import latency_ms

    searcher = lucene_searcher(index_dir, k1, b)
    results, times = {}, []
    for qid, text in queries.items():
        t0 = time.perf_counter()
        hits = searcher.search(text, k=k + remove_query)
        times.append(time.perf_counter() - t0)
        results[qid] = _ranked(hits, qid, k, remove_query)
    return results, latency_ms(times)
