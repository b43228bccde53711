"""Exact re-ranking of a compressed index's candidates with the vectors stored in the shards.

The index proposes K candidates per query; their stored vectors, read by row position (FAISS row i is the i-th row
of the shards in manifest order, as `effir index` added them), give the exact inner product, and the best k are
kept. Parquet cannot hand out single rows without decoding a whole row group (4096 rows), and a batch of queries
touches nearly every group of a large corpus, so the first re-rank streams the shards once into a raw row-major
copy beside them (`vectors.raw`, the shards' dtype, about the shards' size) that is memory-mapped: a candidate costs
one page read, the corpus never has to fit in memory, and the OS keeps hot pages cached. The copy records the
shards' checksums (`vectors.json`) and is remade when they change; every shard is verified when the reader opens.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from effir.core.errors import EffirError
from effir.core.files import atomic_path, sha256_file, write_json

logger = logging.getLogger(__name__)

RAW, RAW_META = "vectors.raw", "vectors.json"


class ShardVectors:
    """Stored vectors by global row position."""

    def __init__(self, folder: str | Path):
        from effir.encoder.shards import read_manifest

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EffirError(f"{self.folder}: the shards this index was built from are gone; exact re-ranking "
                             "needs them (give --shards)")
        manifest = read_manifest(self.folder)
        for shard in manifest["shards"]:
            path = self.folder / shard["file"]
            if not path.exists():
                raise EffirError(f"{path}: missing; exact re-ranking reads the shards the index was built from")
            if sha256_file(path) != shard["sha256"]:
                raise EffirError(f"{path}: checksum does not match {self.folder / 'manifest.json'}; the shard changed "
                                 "since the index was built")
        self.dim = manifest["dim"]
        self.count = sum(s["rows"] for s in manifest["shards"])
        dtype = np.float16 if manifest.get("dtype") == "float16" else np.float32
        made_from = {"rows": self.count, "dim": self.dim, "dtype": np.dtype(dtype).name,
                     "shards": [s["sha256"] for s in manifest["shards"]]}
        self.matrix = self._raw_copy(made_from, dtype)

    def _raw_copy(self, made_from: dict, dtype) -> np.memmap:
        import json

        from effir.encoder.shards import read_shards

        raw, meta = self.folder / RAW, self.folder / RAW_META
        shape = (self.count, self.dim)
        fresh = (meta.exists() and json.loads(meta.read_text()) == made_from and raw.exists()
                 and raw.stat().st_size == self.count * self.dim * np.dtype(dtype).itemsize)
        if not fresh:
            logger.info("%s: writing %s (%.2f GB), a raw copy of the vectors for exact re-ranking", self.folder, RAW,
                        self.count * self.dim * np.dtype(dtype).itemsize / 1e9)
            try:
                meta.unlink(missing_ok=True)
                with atomic_path(raw) as tmp:
                    out = np.memmap(tmp, mode="w+", dtype=dtype, shape=shape)
                    row = 0
                    # already verified above; slices keep one Parquet batch in memory at a time
                    for _ids, emb in read_shards(self.folder, verify=False, batch_rows=65536):
                        out[row:row + len(emb)] = emb
                        row += len(emb)
                    out.flush()
                    del out
                write_json(meta, made_from)
            except PermissionError as e:
                raise EffirError(f"{self.folder}: cannot write {RAW} for exact re-ranking ({e.strerror}); copy the "
                                 "shards to a writable folder and give --shards") from e
        return np.memmap(raw, mode="r", dtype=dtype, shape=shape)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Vectors [len(ids), D] (float32) of the rows `ids` (global positions), read in row order."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.count):
            raise EffirError(f"{self.folder}: row {int(ids.max())} is outside the shards' {self.count} rows; the "
                             "index was built from other shards")
        order = np.argsort(ids, kind="stable")  # ascending offsets: sequential page reads where candidates cluster
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        out[order] = self.matrix[ids[order]]
        return out


RERANK_BUFFER_BYTES = 64 << 20  # gathered candidate vectors held at once; bounds memory whatever the batch


def exact_rerank(vectors: ShardVectors, queries: np.ndarray, candidates: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores [Q, k], ids [Q, k]) of the best k of each query's candidates [Q, K] by exact inner product; queries
    are taken in chunks whose gathered vectors fit RERANK_BUFFER_BYTES; rows the index left empty (id -1) come last
    with id -1."""
    if not len(candidates):
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    queries = np.asarray(queries, dtype=np.float32).reshape(len(candidates), -1)
    chunk = max(1, RERANK_BUFFER_BYTES // max(1, candidates.shape[1] * vectors.dim * 4))
    parts = [_rerank_chunk(vectors, queries[i:i + chunk], candidates[i:i + chunk], k)
             for i in range(0, len(candidates), chunk)]
    return np.concatenate([s for s, _ in parts]), np.concatenate([i for _, i in parts])


def _rerank_chunk(vectors: ShardVectors, queries: np.ndarray, candidates: np.ndarray, k: int):
    valid = candidates >= 0
    stored = vectors.rows(np.where(valid, candidates, 0).reshape(-1)).reshape(*candidates.shape, -1)
    scores = np.einsum("qkd,qd->qk", stored, queries)
    scores[~valid] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(np.where(valid, candidates, -1), order, axis=1)
