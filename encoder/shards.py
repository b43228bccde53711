"""Stream a corpus through an encoder into Parquet shards with a manifest; resume after a crash.

A shard is written to `part-NNNNN.parquet.tmp` and renamed when complete; the manifest is rewritten
(atomically) after each shard, so the folder is always a prefix of complete shards.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from effir.data import Corpus
from effir.files import atomic_path, sha256_file, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class ShardError(RuntimeError):
    pass


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


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
    """The manifest's shards that are on disk and match their checksum; stops at the first that is not."""
    good = []
    for shard in manifest.get("shards", []):
        path = folder / shard["file"]
        if not path.exists() or sha256_file(path) != shard["sha256"]:
            break
        good.append(shard)
    return good


def encode_corpus(encoder, corpus: Corpus, out: str | Path, shard_size: int = 4096, dtype: str = "float32",
                  overwrite: bool = False, model_fingerprint: str = "", progress: bool = True) -> dict:
    """Encode `corpus` into `out`; returns the manifest. Reruns resume after the last complete shard."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.tmp"):
        stale.unlink()
    spec = encoder.spec
    manifest = {
        "format": FORMAT_VERSION,
        "model": spec.name, "model_path": spec.path, "model_fingerprint": model_fingerprint,
        "pooling": spec.pooling, "normalized": spec.normalize, "encoding": spec.encoding_settings(),
        "dim": encoder.dim, "dtype": dtype,
        "corpus": str(corpus.path), "corpus_fingerprint": corpus.fingerprint(), "corpus_count": corpus.count,
        "shard_size": shard_size, "shards": [], "complete": False,
    }
    if (out / MANIFEST).exists() and not overwrite:
        old = read_manifest(out)
        _compatible(old, manifest, out)
        manifest["shards"] = _verified_shards(out, old)
    elif overwrite:
        for old_shard in out.glob("part-*.parquet"):
            old_shard.unlink()
    done = sum(s["rows"] for s in manifest["shards"])
    write_json(out / MANIFEST, manifest)

    docs = itertools.islice(iter(corpus), done, None)
    bar = tqdm(total=corpus.count, initial=done, unit="doc", desc=f"encode {spec.name}", disable=not progress,
               smoothing=0.1)
    index = len(manifest["shards"])
    while chunk := list(itertools.islice(docs, shard_size)):
        emb, n_tokens = encoder.encode([d.contents for d in chunk], side="passage", progress=bar)
        name = shard_name(index)
        with atomic_path(out / name) as tmp:
            pq.write_table(_table([d.docid for d in chunk], emb, n_tokens, dtype), tmp)
        manifest["shards"].append({"file": name, "rows": len(chunk), "first_row": done,
                                   "last_row": done + len(chunk) - 1, "sha256": sha256_file(out / name)})
        done += len(chunk)
        index += 1
        write_json(out / MANIFEST, manifest)
    bar.close()
    manifest["complete"] = True
    write_json(out / MANIFEST, manifest)
    return manifest


def read_shards(folder: str | Path, verify: bool = True):
    """Yield (docids, embeddings float32 [n, D]) per shard, in corpus order."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
        raise ShardError(f"{folder}: encoding is incomplete ({sum(s['rows'] for s in manifest['shards'])} of "
                         f"{manifest['corpus_count']} documents); rerun `effir encode` to finish it")
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if verify and sha256_file(path) != shard["sha256"]:
            raise ShardError(f"{path}: checksum does not match the manifest")
        table = pq.read_table(path)
        col = table.column("embedding").combine_chunks()
        emb = col.values.to_numpy(zero_copy_only=False).reshape(len(table), manifest["dim"]).astype(np.float32)
        yield table.column("docid").to_pylist(), emb


def load_all(folder: str | Path) -> tuple[list[str], np.ndarray]:
    ids, embs = [], []
    for docids, emb in read_shards(folder):
        ids.extend(docids)
        embs.append(emb)
    return ids, np.concatenate(embs)
