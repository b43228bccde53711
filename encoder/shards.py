"""Stream a corpus through an encoder into Parquet shards with a manifest; resume after a crash.

A shard is written to `part-NNNNN.parquet.tmp` and renamed when complete; the manifest is rewritten
(atomically) after each shard, so the folder is always a prefix of complete shards. While a shard is encoded its
finished batches are saved every minute to `part-NNNNN.partial.npz`, so a stop mid-shard loses at most a minute.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from effir.core.data import Corpus
from effir.core.errors import EffirError
from effir.core.files import atomic_path, sha256_file, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
ROW_GROUP = 4096  # rows per Parquet row group: index building and the re-rank copy stream a group at a time
CHECKPOINT_S = 60.0  # seconds between saves of a shard's finished batches: a SmolLM2 shard takes ~15 min on 2 cores

logger = logging.getLogger(__name__)


class ShardError(EffirError):
    pass


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def partial_name(i: int) -> str:
    return f"part-{i:05d}.partial.npz"


def _table(docids: list[str], emb: np.ndarray, n_tokens: np.ndarray, dtype: str) -> pa.Table:
    np_dtype = np.float16 if dtype == "float16" else np.float32
    flat = pa.array(emb.astype(np_dtype, copy=False).ravel())
    return pa.table({
        "docid": pa.array(docids, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[1]),
        "n_tokens": pa.array(n_tokens, pa.int32()),
    })


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ShardError(f"{path}: no manifest; is this an `effir encode` output folder?")
    return json.loads(path.read_text())


def _compatible(old: dict, new: dict, folder: Path) -> None:
    for key in ("model_fingerprint", "corpus_fingerprint", "dim", "dtype", "pooling", "normalized", "shard_size"):
        if old.get(key) != new.get(key):
            raise ShardError(f"{folder} holds shards made with a different {key} ({old.get(key)!r} != "
                             f"{new.get(key)!r}); use another --out folder or --overwrite")


def _verified_shards(folder: Path, manifest: dict) -> list[dict]:
    """The manifest's shards that are on disk and match their checksum (engines may finish them out of order)."""
    return [shard for shard in manifest.get("shards", [])
            if (folder / shard["file"]).exists() and sha256_file(folder / shard["file"]) == shard["sha256"]]


def chunks(corpus: Corpus, shard_size: int):
    """(shard index, first row, documents) for every shard of the corpus, in order."""
    docs = iter(corpus)
    index, first = 0, 0
    while chunk := list(itertools.islice(docs, shard_size)):
        yield index, first, chunk
        index, first = index + 1, first + len(chunk)


class ShardCheckpoint:
    """A shard's finished batches, saved at most every `every_s` seconds (atomically) and read back by the next run.

    The saved state is keyed by the shard's documents and its batches, so a run that would batch differently (another
    `max_tokens`) starts the shard afresh rather than mix the two. It also keeps the seconds spent so far, so the
    shard's recorded time is its whole cost over every run that worked on it."""

    def __init__(self, path: Path, docids: list[str], every_s: float = CHECKPOINT_S):
        self.path, self.docids, self.every_s = path, docids, every_s
        self.started = self.last_save = time.perf_counter()
        self.earlier_s = 0.0
        self.key = ""

    @property
    def seconds(self) -> float:
        return round(self.earlier_s + time.perf_counter() - self.started, 3)

    def start(self, batches: list[list[int]], shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """(vectors so far, how many of `batches` they hold): what an earlier run saved, else nothing done."""
        self.key = hashlib.sha256(json.dumps([self.docids, batches]).encode()).hexdigest()
        if self.path.exists():
            try:
                with np.load(self.path) as saved:
                    if str(saved["key"]) == self.key and saved["vectors"].shape == shape:
                        self.earlier_s = float(saved["seconds"])
                        logger.info("%s: resuming after %d of %d batches", self.path, int(saved["batches_done"]),
                                    len(batches))
                        return saved["vectors"].astype(np.float32), int(saved["batches_done"])
                logger.warning("%s was saved for other documents or batches; encoding the shard from its start",
                               self.path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
                logger.warning("%s is unreadable (%s); encoding the shard from its start", self.path, err)
        return np.zeros(shape, np.float32), 0

    def save(self, vectors: np.ndarray, batches_done: int) -> None:
        if time.perf_counter() - self.last_save < self.every_s:
            return
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=self.key, vectors=vectors, batches_done=batches_done, seconds=self.seconds)
        self.last_save = time.perf_counter()


def encode_shard(encoder, out: Path, index: int, first_row: int, docids: list[str], texts: list[str], dtype: str,
                 progress=None, checkpoint_s: float = CHECKPOINT_S) -> dict:
    """Encode one shard's texts and write it, resuming from its saved batches; its manifest record keeps the seconds
    it took, so a corpus encoded over several runs still adds up to its whole cost (`encode_seconds`)."""
    checkpoint = ShardCheckpoint(out / partial_name(index), docids, checkpoint_s)
    emb, n_tokens = encoder.encode(texts, side="passage", progress=progress, checkpoint=checkpoint)
    record = write_shard(out, index, first_row, docids, emb, n_tokens, dtype)
    checkpoint.path.unlink(missing_ok=True)
    return {**record, "seconds": checkpoint.seconds}


def encode_seconds(manifest: dict) -> float | None:
    """The seconds every shard took to encode and write, summed over the runs that made them; None when a shard was
    written before shards kept their time."""
    seconds = [shard.get("seconds") for shard in manifest["shards"]]
    return None if None in seconds else round(sum(seconds), 3)


def write_shard(out: Path, index: int, first_row: int, docids: list[str], emb: np.ndarray, n_tokens: np.ndarray,
                dtype: str) -> dict:
    """Write one shard under a temporary name, rename it when whole; returns its manifest record."""
    name = shard_name(index)
    with atomic_path(out / name) as tmp:
        pq.write_table(_table(docids, emb, n_tokens, dtype), tmp, row_group_size=ROW_GROUP)
    return {"file": name, "rows": len(docids), "first_row": first_row, "last_row": first_row + len(docids) - 1,
            "sha256": sha256_file(out / name)}


class ShardWriter:
    """The manifest side of encoding: what is done, recording each finished shard, marking completion."""

    def __init__(self, spec, dim: int, corpus: Corpus, out: str | Path, shard_size: int, dtype: str,
                 overwrite: bool, model_fingerprint: str):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob("*.tmp"):
            stale.unlink()
        self.manifest = {
            "format": FORMAT_VERSION,
            "model": spec.name, "model_path": spec.path, "model_fingerprint": model_fingerprint,
            "pooling": spec.pooling, "normalized": spec.normalize, "encoding": spec.encoding_settings(),
            "dim": dim, "dtype": dtype,
            "corpus": str(corpus.path), "corpus_fingerprint": corpus.fingerprint(), "corpus_count": corpus.count,
            "shard_size": shard_size, "shards": [], "complete": False,
        }
        if (self.out / MANIFEST).exists() and not overwrite:
            old = read_manifest(self.out)
            _compatible(old, self.manifest, self.out)
            self.manifest["shards"] = _verified_shards(self.out, old)
        elif overwrite:
            for old in [*self.out.glob("part-*.parquet"), *self.out.glob("part-*.partial.npz")]:
                old.unlink()
        self.done = {s["file"] for s in self.manifest["shards"]}
        write_json(self.out / MANIFEST, self.manifest)

    @property
    def rows_done(self) -> int:
        return sum(s["rows"] for s in self.manifest["shards"])

    def is_done(self, index: int) -> bool:
        return shard_name(index) in self.done

    def record(self, shard: dict) -> None:
        self.manifest["shards"] = sorted(self.manifest["shards"] + [shard], key=lambda s: s["first_row"])
        self.done.add(shard["file"])
        write_json(self.out / MANIFEST, self.manifest)

    def finish(self) -> dict:
        rows = self.rows_done
        if rows != self.manifest["corpus_count"]:
            raise ShardError(f"{self.out}: {rows} of {self.manifest['corpus_count']} documents encoded")
        self.manifest["complete"] = True
        write_json(self.out / MANIFEST, self.manifest)
        for left in self.out.glob("part-*.partial.npz"):  # a stop between a shard's write and its partial's removal
            left.unlink()
        return self.manifest


def encode_corpus(encoder, corpus: Corpus, out: str | Path, shard_size: int = 4096, dtype: str = "float32",
                  overwrite: bool = False, model_fingerprint: str = "", progress: bool = True,
                  checkpoint_s: float = CHECKPOINT_S) -> dict:
    """Encode `corpus` into `out`; returns the manifest. Reruns resume from the shards and batches already done."""
    writer = ShardWriter(encoder.spec, encoder.dim, corpus, out, shard_size, dtype, overwrite, model_fingerprint)
    bar = tqdm(total=corpus.count, initial=writer.rows_done, unit="doc", desc=f"encode {encoder.spec.name}",
               disable=not progress, smoothing=0.1)
    for index, first, chunk in chunks(corpus, shard_size):
        if writer.is_done(index):
            continue
        writer.record(encode_shard(encoder, writer.out, index, first, [d.docid for d in chunk],
                                   [d.contents for d in chunk], dtype, progress=bar, checkpoint_s=checkpoint_s))
    bar.close()
    return writer.finish()


def embeddings(column, dim: int) -> np.ndarray:
    flat = column.combine_chunks().flatten() if hasattr(column, "combine_chunks") else column.flatten()
    return flat.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)


def read_shards(folder: str | Path, verify: bool = True, batch_rows: int | None = None):
    """Yield (docids, embeddings float32 [n, D]) per shard, in corpus order; with `batch_rows`, in slices of at most
    that many rows, so a consumer that adds as it reads (index building) holds one slice at a time."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
        raise ShardError(f"{folder}: encoding is incomplete ({sum(s['rows'] for s in manifest['shards'])} of "
                         f"{manifest['corpus_count']} documents); rerun `effir encode` to finish it")
    dim = manifest["dim"]
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if verify and sha256_file(path) != shard["sha256"]:
            raise ShardError(f"{path}: checksum does not match the manifest")
        parts = pq.ParquetFile(path).iter_batches(batch_size=batch_rows) if batch_rows else [pq.read_table(path)]
        for part in parts:
            yield part.column("docid").to_pylist(), embeddings(part.column("embedding"), dim)


def load_all(folder: str | Path) -> tuple[list[str], np.ndarray]:
    ids, embs = [], []
    for docids, emb in read_shards(folder):
        ids.extend(docids)
        embs.append(emb)
    return ids, np.concatenate(embs)
