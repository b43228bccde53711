"""Searching from Python: an index folder in, typed hits out; BM25 and fusion behind the same two calls.

    >>> s = Searcher(index_dir)                      # the model that encoded the shards, read from the index
    >>> hits = s.search("protein binding in the cell", k=3)
    >>> [h.rank for h in hits], hits[0].score >= hits[1].score >= hits[2].score
    ([1, 2, 3], True)
    >>> hits[0].title is not None                    # titles come from the corpus the shards were made from
    True
    >>> [len(h) for h in s.search_batch(["brain", "heart tissue"], k=2)]
    [2, 2]
    >>> hybrid = FusedSearcher([s, BM25Searcher(corpus_path, work=work_dir)], method="rrf")
    >>> len(hybrid.search("immune response", k=5))
    5
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hit:
    docid: str
    score: float
    rank: int
    title: str | None = None


def _titles(corpus_path: str | Path | None) -> dict[str, str]:
    from effir.core.data import Corpus

    if not corpus_path or not Path(corpus_path).exists():
        return {}
    return {d.docid: d.title for d in Corpus(corpus_path)}


def _hits(ranked: list[tuple[str, float]], titles: dict[str, str]) -> list[Hit]:
    return [Hit(docid, score, rank, titles.get(docid)) for rank, (docid, score) in enumerate(ranked, 1)]


class Searcher:
    """Dense search over an `effir index` folder; `rerank=K` re-scores the index's top K exactly from the shards.
    `model` (or a resolved `spec`, with the CLI's overrides) defaults to the model that encoded the shards."""

    def __init__(self, index: str | Path, model: str | None = None, corpus: str | Path | None = None,
                 rerank: int | None = None, shards: str | Path | None = None, nprobe: int | None = None,
                 ef_search: int | None = None, mmap: bool = False, device: str | None = None,
                 dtype: str | None = None, spec=None):
        from effir.core.models import resolve
        from effir.encoder.model import Encoder
        from effir.index.build import LoadedIndex

        self.index = LoadedIndex(index, nprobe=nprobe, ef_search=ef_search, mmap=mmap)
        self.encoder = Encoder(spec or resolve(model or self.index.meta["model_path"]), device=device, dtype=dtype)
        self.shards = Path(shards or self.index.meta["shards"])
        self._corpus, self._titles = corpus, None
        self.rerank = None
        if rerank is not None:
            from effir.search.rerank import ShardVectors

            self.rerank = (ShardVectors(self.shards), rerank)

    @property
    def titles(self) -> dict[str, str]:
        """docid -> title, read once, when a hit first needs one (the corpus the shards were made from)."""
        if self._titles is None:
            from effir.encoder.shards import read_manifest

            corpus = self._corpus
            if corpus is None and (self.shards / "manifest.json").exists():
                corpus = read_manifest(self.shards).get("corpus")
            self._titles = _titles(corpus)
        return self._titles

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[Hit]]:
        from effir.search.dense import check_rerank, search_vectors

        check_rerank(k, self.rerank[1] if self.rerank else None)
        vectors, _ = self.encoder.encode(list(queries), side="query")
        return [_hits(ranked, self.titles) for ranked in search_vectors(self.index, vectors, k, self.rerank)]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_batch([query], k)[0]


class BM25Searcher:
    """Lucene BM25 (Pyserini) over a BEIR corpus; the Lucene index is built once under `work`."""

    def __init__(self, corpus: str | Path, work: str | Path, k1: float = 0.9, b: float = 0.4):
        from effir.core.data import Corpus
        from effir.search.bm25 import build_lucene_index, lucene_searcher

        self.searcher = lucene_searcher(build_lucene_index(Corpus(corpus), Path(work)), k1, b)
        self.titles = _titles(corpus)

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[Hit]]:
        return [self.search(q, k) for q in queries]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return _hits([(h.docid, float(h.score)) for h in self.searcher.search(query, k=k)], self.titles)


class FusedSearcher:
    """Several searchers' hits fused per query (`fusion.fuse`: RRF or interpolation), same calls as a Searcher."""

    def __init__(self, searchers: list, method: str = "rrf", rrf_k: int = 60, weights: list[float] | None = None,
                 depth: int = 100):
        self.searchers, self.method, self.rrf_k, self.weights, self.depth = searchers, method, rrf_k, weights, depth
        self.titles = {d: t for s in searchers for d, t in s.titles.items()}

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[Hit]]:
        from effir.search.fusion import fuse

        runs = [{str(i): {h.docid: h.score for h in hits} for i, hits in enumerate(s.search_batch(queries, self.depth))}
                for s in self.searchers]
        fused, _ = fuse(runs, self.method, self.rrf_k, self.weights, self.depth, k)
        return [_hits(fused.get(str(i), []), self.titles) for i in range(len(queries))]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_batch([query], k)[0]
