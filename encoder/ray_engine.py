"""Corpus encoding on Ray Data: the same encoder in actors, the same Parquet shards and manifest.

The driver validates the corpus and cuts it into the shards the local engine would write (same boundaries, so
`effir index` cannot tell the engines apart); each actor loads the model once and encodes whole shards
(`map_batches` with batch_size=1 shard), writing each shard atomically; the driver records each finished shard in
the manifest as results stream back, so a rerun after a crash encodes only the shards still missing. Ray retries
the work of a failed actor. The output folder must be on storage every worker can reach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from effir.encoder.shards import CHECKPOINT_S, ShardWriter, chunks, encode_shard


class ShardEncoder:
    """A Ray actor: one model per actor, one shard per call."""

    def __init__(self, spec, out: str, embedding_dtype: str, device: str | None, compute_dtype: str | None,
                 max_tokens: int, threads: int, checkpoint_s: float):
        from effir.core.device import configure_threads
        from effir.encoder.model import Encoder

        configure_threads(threads)
        self.encoder = Encoder(spec, device=device, dtype=compute_dtype, max_tokens=max_tokens)
        self.out, self.dtype, self.checkpoint_s = Path(out), embedding_dtype, checkpoint_s

    def __call__(self, batch: dict) -> dict:
        records = [encode_shard(self.encoder, self.out, int(index), int(first), list(docids), list(texts), self.dtype,
                                checkpoint_s=self.checkpoint_s)
                   for index, first, docids, texts in zip(batch["shard"], batch["first_row"], batch["docids"],
                                                          batch["texts"])]
        return {key: np.array([r[key] for r in records]) for key in records[0]}


def encode_corpus_ray(spec, corpus, out: str | Path, shard_size: int = 4096, dtype: str = "float32",
                      overwrite: bool = False, model_fingerprint: str = "", actors: int = 2,
                      cpus_per_actor: int = 1, address: str | None = None, progress: bool = True,
                      compute_dtype: str | None = None, max_tokens: int = 8192,
                      checkpoint_s: float = CHECKPOINT_S) -> dict:
    """`dtype`: the stored embeddings' (float32 | float16); `compute_dtype`: the model's (`--dtype`)."""
    import ray
    from tqdm import tqdm
    from transformers import AutoConfig

    dim = AutoConfig.from_pretrained(spec.path).hidden_size
    writer = ShardWriter(spec, dim, corpus, out, shard_size, dtype, overwrite, model_fingerprint)
    todo = [{"shard": i, "first_row": first, "docids": [d.docid for d in chunk], "texts": [d.contents for d in chunk]}
            for i, first, chunk in chunks(corpus, shard_size) if not writer.is_done(i)]
    if todo:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     **({} if address else {"num_cpus": actors * cpus_per_actor}))
        try:
            use_gpu = bool(ray.cluster_resources().get("GPU"))
            results = ray.data.from_items(todo).map_batches(
                ShardEncoder, batch_size=1, concurrency=actors,
                num_gpus=1 if use_gpu else 0, num_cpus=cpus_per_actor,
                fn_constructor_kwargs={"spec": spec, "out": str(writer.out), "embedding_dtype": dtype,
                                       "device": "cuda" if use_gpu else "cpu", "compute_dtype": compute_dtype,
                                       "max_tokens": max_tokens, "threads": cpus_per_actor,
                                       "checkpoint_s": checkpoint_s},
                max_restarts=3, max_task_retries=3)
            bar = tqdm(total=corpus.count, initial=writer.rows_done, unit="doc", desc=f"encode {spec.name} (ray)",
                       disable=not progress)
            for row in results.iter_rows():
                record = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                writer.record(record)
                bar.update(record["rows"])
            bar.close()
        finally:
            if started_here:
                ray.shutdown()
    return writer.finish()
