"""Query encoding + FAISS search into TREC runs; the Lucene BM25 baseline through Pyserini; fusion; exact re-ranking.

`from effir.search import Searcher` is the Python entry point (see `searcher.py`)."""

from effir.search.searcher import BM25Searcher, FusedSearcher, Hit, Searcher

__all__ = ["BM25Searcher", "FusedSearcher", "Hit", "Searcher"]
