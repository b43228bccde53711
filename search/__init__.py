"""Query encoding + FAISS search into TREC runs; the Lucene BM25 baseline through Pyserini."""
