"""Build a FAISS index from Parquet shards (inner product), on GPU when faiss sees one; save with its cost figures."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from effir.core.errors import EffirError
from effir.core.files import atomic_path, write_json
from effir.core.memory import PeakMemory
from effir.encoder.shards import read_manifest, read_shards

INDEX_FILE = "index.faiss"
DOCIDS_FILE = "docids.txt"
META_FILE = "meta.json"
ADD_BATCH = 16_384  # rows read and added at a time

logger = logging.getLogger(__name__)


class IndexBuildError(EffirError):
    pass


def _training_sample(folder: Path, n: int, seed: int) -> np.ndarray:
    """A uniform sample of n vectors, read shard by shard (the raw set may not fit in memory)."""
    manifest = read_manifest(folder)
    total = manifest["corpus_count"]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(n, total), replace=False))
    out = np.empty((len(pick), manifest["dim"]), dtype=np.float32)  # filled in place: no second copy
    offset = filled = 0
    for _ids, emb in read_shards(folder, verify=False, batch_rows=ADD_BATCH):  # the add pass verifies
        local = pick[(pick >= offset) & (pick < offset + len(emb))] - offset
        out[filled:filled + len(local)] = emb[local]
        filled += len(local)
        offset += len(emb)
    _release_arrow_memory()
    return out


def _release_arrow_memory() -> None:
    """Arrow's allocator keeps freed read buffers for reuse; hand them back before FAISS allocates its own."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _to_gpu(index, factory: str):
    import faiss

    if not hasattr(faiss, "index_cpu_to_all_gpus"):
        logger.info("faiss %s is a CPU build: building %s on the CPU", faiss.__version__, factory)
        return index, False
    if faiss.get_num_gpus() == 0:
        logger.info("faiss sees no GPU: building %s on the CPU", factory)
        return index, False
    try:
        gpu = faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as e:  # e.g. HNSW has no GPU version
        logger.warning("%s cannot be built on the GPU (%s); building it on the CPU", factory,
                       str(e).splitlines()[-1][:160])
        return index, False
    logger.info("building %s on %d GPU(s)", factory, faiss.get_num_gpus())
    return gpu, True


def _factory(dim: int, factory: str):
    import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        reason = str(e).splitlines()[-1]
        reason = reason.split("failed: ")[-1] if "failed: " in reason else reason.split(": ")[-1]
        raise IndexBuildError(f"--factory {factory!r} cannot index {dim}-d vectors: {reason}") from None
    for part in index_parts(index):
        # The factory turns on polysemous training for PQ codes. It serves Hamming-filtered search, which effir
        # never runs, and costs ~25x the PQ training itself (56 s against 2 s for 20k × 128, IVF64,PQ16, here).
        if hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    return index


def index_parts(index) -> list:
    """The index and the indexes it wraps (a pre-transform's, HNSW's storage), each as its concrete class."""
    import faiss

    parts, todo = [], [index]
    while todo:
        part = faiss.downcast_index(todo.pop())
        parts.append(part)
        todo += [getattr(part, name) for name in ("index", "storage") if getattr(part, name, None) is not None]
    return parts


def build_index(shards: str | Path, out: str | Path, factory: str = "Flat", train_size: int | None = None,
                seed: int = 0, use_gpu: bool = True) -> dict:
    import faiss

    shards, out = Path(shards), Path(out)
    manifest = read_manifest(shards)
    dim = manifest["dim"]
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        index = _factory(dim, factory)
        # read IVF's list count on the CPU index: a GPU index cannot be unwrapped by extract_index_ivf
        nlist = getattr(faiss.extract_index_ivf(index), "nlist", 0) if "IVF" in factory else 0
        on_gpu = False
        if use_gpu:
            index, on_gpu = _to_gpu(index, factory)
        if not index.is_trained:
            # k-means wants ≥ 39 points per list (FAISS warns below that)
            sample = _training_sample(shards, train_size or max(100_000, 40 * nlist), seed)
            if nlist and len(sample) < nlist:
                raise IndexBuildError(f"{factory}: {nlist} lists need at least {nlist} training vectors, "
                                      f"the corpus has {len(sample)}; use a smaller IVF")
            try:
                index.train(sample)
            except RuntimeError as e:  # e.g. PQ with 8 bits needs 256 training vectors per sub-quantizer
                raise IndexBuildError(f"{factory}: training on {len(sample)} vectors failed: "
                                      f"{str(e).splitlines()[-1]}") from None
            del sample
        docids: list[str] = []
        for ids, emb in read_shards(shards, batch_rows=ADD_BATCH):  # slice by slice: memory stays near the index size
            index.add(emb)
            docids.extend(ids)
        if on_gpu:
            index = faiss.index_gpu_to_cpu(index)
        build_s = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
    with atomic_path(out / DOCIDS_FILE) as tmp:
        tmp.write_text("\n".join(docids) + "\n", encoding="utf-8")
    index_bytes = (out / INDEX_FILE).stat().st_size
    meta = {
        "factory": factory, "metric": "inner_product", "dim": dim, "count": index.ntotal,
        "build_seconds": round(build_s, 4), "built_on": "gpu" if on_gpu else "cpu",
        "bytes_on_disk": index_bytes, "bytes_per_vector": round(index_bytes / max(1, index.ntotal), 2),
        "peak_memory_bytes": mem.peak, "peak_memory_delta_bytes": mem.delta,
        "shards": str(shards), "model": manifest["model"], "model_path": manifest["model_path"],
        "model_fingerprint": manifest["model_fingerprint"], "encoding": manifest.get("encoding"),
    }
    write_json(out / META_FILE, meta)
    return meta


class DocIds:
    """Row i of the index → its docid, held as the file's UTF-8 bytes and one offset per row (a few bytes per row,
    where a Python list would hold a ~60-byte string object per row: more than an IVF-PQ code at a million rows)."""

    def __init__(self, path: Path, count: int):
        self.blob = path.read_bytes()
        newlines = np.flatnonzero(np.frombuffer(self.blob, dtype=np.uint8) == ord("\n"))
        if not self.blob.endswith(b"\n"):
            newlines = np.append(newlines, len(self.blob))
        if len(newlines) < count:
            raise IndexBuildError(f"{path}: {len(newlines)} docids for an index of {count} vectors; rebuild the index")
        starts = np.concatenate([[0], newlines[:count] + 1])  # row i is blob[starts[i] : starts[i + 1] - 1]
        self.starts = starts.astype(np.uint32 if starts[-1] < 2**32 else np.int64)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, row: int) -> str:
        if not 0 <= row < len(self):
            raise IndexError(row)
        return self.blob[int(self.starts[row]):int(self.starts[row + 1]) - 1].decode("utf-8")


class LoadedIndex:
    def __init__(self, folder: str | Path, nprobe: int | None = None, ef_search: int | None = None,
                 mmap: bool = False):
        """`mmap`: map the index file instead of reading it (IVF lists then stay on disk until touched)."""
        import faiss

        folder = self.folder = Path(folder)
        for name in (INDEX_FILE, DOCIDS_FILE, META_FILE):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder / name}: missing; build the index with `effir index`")
        self.meta = json.loads((folder / META_FILE).read_text())
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        self.index = faiss.read_index(str(folder / INDEX_FILE), flags)
        self.docids = DocIds(folder / DOCIDS_FILE, self.index.ntotal)
        params = []
        if nprobe:
            params.append(f"nprobe={nprobe}")
        if ef_search:
            params.append(f"efSearch={ef_search}")
        if params:
            faiss.ParameterSpace().set_index_parameters(self.index, ",".join(params))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if queries.shape[-1] != self.index.d:
            raise IndexBuildError(f"{self.folder}: the index holds {self.index.d}-d vectors of model "
                                  f"{self.meta.get('model')!r}, the query encoder gives {queries.shape[-1]}-d "
                                  f"vectors; search with the model that encoded the shards")
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
