"""Exact re-ranking of a compressed index's candidates with the vectors stored in the shards.

The index proposes K candidates per query; their stored vectors, read by row position (FAISS row i is the i-th row
of the shards in manifest order, as `effir index` added them), give the exact inner product, and the best k are
kept. Only the Parquet row groups that hold candidates are read (a few recent ones are cached), so the corpus never
has to fit in memory. Every shard's checksum is verified once, when the reader opens.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from effir.core.errors import EffirError
from effir.core.files import sha256_file
from effir.encoder.shards import embeddings, read_manifest


class ShardVectors:
    """Stored vectors by global row position."""

    def __init__(self, folder: str | Path, cache_groups: int = 64):
        import pyarrow.parquet as pq

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EffirError(f"{self.folder}: the shards this index was built from are gone; exact re-ranking "
                             "needs them (give --shards)")
        manifest = read_manifest(self.folder)
        self.dim = manifest["dim"]
        self.files, self.starts, self.groups = [], [], []
        start = 0
        for shard in manifest["shards"]:
            path = self.folder / shard["file"]
            if not path.exists():
                raise EffirError(f"{path}: missing; exact re-ranking reads the shards the index was built from")
            if sha256_file(path) != shard["sha256"]:
                raise EffirError(f"{path}: checksum does not match {self.folder / 'manifest.json'}; the shard changed "
                                 "since the index was built")
            meta = pq.ParquetFile(path).metadata
            sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            self.files.append(path)
            self.starts.append(start)
            self.groups.append(list(np.cumsum([0] + sizes)))
            start += shard["rows"]
        self.count = start
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_groups = cache_groups

    def _group(self, shard: int, group: int) -> np.ndarray:
        import pyarrow.parquet as pq

        key = (shard, group)
        if key not in self._cache:
            table = pq.ParquetFile(self.files[shard]).read_row_group(group, columns=["embedding"])
            self._cache[key] = embeddings(table.column("embedding"), self.dim)
            if len(self._cache) > self._cache_groups:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Vectors [len(ids), D] (float32) of the rows `ids` (global positions); each row group read once."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.count):
            raise EffirError(f"{self.folder}: row {int(ids.max())} is outside the shards' {self.count} rows; the "
                             "index was built from other shards")
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        shard_of = np.searchsorted(self.starts, ids, side="right") - 1
        for shard in np.unique(shard_of):
            at = np.nonzero(shard_of == shard)[0]
            local = ids[at] - self.starts[shard]
            bounds = np.asarray(self.groups[shard])
            group_of = np.searchsorted(bounds, local, side="right") - 1
            for group in np.unique(group_of):
                sel = group_of == group
                out[at[sel]] = self._group(int(shard), int(group))[local[sel] - bounds[group]]
        return out


def exact_rerank(vectors: ShardVectors, query: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """(scores [k'], ids [k']) of the best k candidates of one query by exact inner product (k' ≤ k)."""
    ids = candidates[candidates >= 0]
    scores = vectors.rows(ids) @ np.asarray(query, dtype=np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], ids[order]
