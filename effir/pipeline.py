"""The stages chained for one dataset and one model: encode → index → search → eval.

Each stage records what it was made from in `<out>/stages.json`; a rerun with the same inputs reuses it,
so an interrupted run continues where it stopped (encoding itself resumes shard by shard).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from effir.core.data import BeirDataset
from effir.core.files import sha256_file, write_json
from effir.core.trec import read_trec_run, write_trec_run

logger = logging.getLogger(__name__)


class Stages:
    """What each stage was made from (`key`) and what it wrote (`outputs`, with sha256): a stage is done only when
    both still hold, so an output deleted or changed since is made again."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / "stages.json"
        self.records = json.loads(self.path.read_text()) if self.path.exists() else {}

    def done(self, name: str, key: dict) -> dict | None:
        rec = self.records.get(name)
        if not rec or rec.get("key") != key:
            return None
        for rel, digest in rec.get("outputs", {}).items():
            path = self.out / rel
            if not path.exists() or sha256_file(path) != digest:
                return None
        return rec

    def record(self, name: str, key: dict, outputs: list[Path] = (), **figures) -> dict:
        self.records[name] = {"key": key, "outputs": {str(Path(o).relative_to(self.out)): sha256_file(o)
                                                      for o in outputs}, **figures}
        write_json(self.path, self.records)
        return self.records[name]


def run_dense(dataset: str | Path, model: str, out: str | Path, split: str = "test", factory: str = "Flat",
              k: int = 1000, device=None, dtype=None, spec=None, remove_query: bool = False, encoder=None) -> dict:
    from effir.core.models import resolve
    from effir.encoder.model import Encoder, model_fingerprint
    from effir.encoder.shards import encode_corpus, encode_seconds
    from effir.eval.metrics import evaluate, per_query
    from effir.index.build import LoadedIndex, build_index
    from effir.search.dense import dense_search

    ds = BeirDataset(dataset).require(split)
    corpus = ds.corpus()
    queries = ds.queries()
    qrels = ds.qrels(split, corpus, queries)
    spec = spec or resolve(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fp = model_fingerprint(spec)
    stages = Stages(out)
    corpus_fp = corpus.fingerprint()
    encoder = encoder or Encoder(spec, device=device, dtype=dtype)

    key = {"model": fp, "corpus": corpus_fp}
    rec = stages.done("encode", key)
    if rec is None:
        # shards this folder's own encode stage made from another model or corpus are stale, not to be resumed
        stale = "encode" in stages.records and stages.records["encode"].get("key") != key
        if stale:
            logger.warning("%s: made from another model or corpus than %s; encoding again", out / "shards", spec.path)
        t0 = time.perf_counter()
        manifest = encode_corpus(encoder, corpus, out / "shards", model_fingerprint=fp, overwrite=stale)
        # the shards' own times: an encode resumed after a crash counts the shards of every run that made them
        seconds = encode_seconds(manifest)
        if seconds is None:
            seconds = round(time.perf_counter() - t0, 3)
            logger.warning("%s: shards written before they kept their time; the encode's seconds are this run's",
                           out / "shards")
        rec = stages.record("encode", key, outputs=[out / "shards" / "manifest.json"], seconds=seconds,
                            docs=corpus.count)
    encode_s = rec["seconds"]

    key = {**key, "factory": factory}
    rec = stages.done("index", key)
    if rec is None:
        meta = build_index(out / "shards", out / "index", factory=factory)
        rec = stages.record("index", key, outputs=[out / "index" / "index.faiss", out / "index" / "docids.txt"],
                            meta=meta)
    index_meta = rec["meta"]

    judged = {q: queries[q] for q in qrels}
    key = {**key, "split": split, "k": k, "remove_query": remove_query, "queries": len(judged)}
    run_path = out / f"run.{split}.trec"
    rec = stages.done("search", key)
    if rec is None:
        index = LoadedIndex(out / "index")
        results, latency = dense_search(encoder, index, judged, k=k, remove_query=remove_query)
        write_trec_run(run_path, results, spec.name)
        rec = stages.record("search", key, outputs=[run_path], latency=latency)
    latency = rec["latency"]

    run = read_trec_run(run_path)
    metrics = evaluate(run, qrels)
    result = {"dataset": ds.name, "model": spec.name, "model_path": spec.path, "split": split, **metrics,
              "doc_encode_s": encode_s, "index": index_meta, "latency": latency, "run": str(run_path),
              "end_to_end_s": round(encode_s + index_meta["build_seconds"] + latency["query_encode"]["total_s"]
                                    + latency["search"]["total_s"], 3)}
    write_json(out / "metrics.json", result)
    result["per_query"] = per_query(run, qrels)
    return result
