"""FAISS indexes built from embedding shards: factory strings, docid order, cost figures."""
