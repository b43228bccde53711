"""Encoding: load a model folder (full or compressed), tokenise, pool, normalise, stream to Parquet shards."""
