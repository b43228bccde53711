"""One report row per system: BM25, a dense encoder, or a hybrid of two (quality from the cached pipeline, cost
figures beside it)."""

from __future__ import annotations

import time
from pathlib import Path

from effir.eval.results import SystemResult


def system_kind(spec) -> str:
    modified = (spec.is_compressed or spec.extra.get("quantization") or spec.extra.get("sparsity")
                or spec.extra.get("shadow"))
    return "compressed" if modified else "full"


def bm25_system(dataset, out: Path, split: str) -> SystemResult:
    from effir.core.data import BeirDataset
    from effir.core.files import write_json
    from effir.core.trec import read_trec_run, write_trec_run
    from effir.eval.metrics import evaluate, per_query
    from effir.pipeline import Stages
    from effir.search.bm25 import bm25_search_timed, build_lucene_index

    ds = BeirDataset(dataset)
    corpus, queries = ds.corpus(), ds.queries()
    qrels = ds.qrels(split, corpus, queries)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    key = {"corpus": corpus.fingerprint(), "split": split}
    rec = stages.done("bm25", key)
    run_path = out / f"run.{split}.trec"
    if rec is None:
        t0 = time.perf_counter()
        index_dir = build_lucene_index(corpus, out)
        build_s = time.perf_counter() - t0
        results, latency = bm25_search_timed(index_dir, {q: queries[q] for q in qrels})
        write_trec_run(run_path, results, "bm25")
        size = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
        rec = stages.record("bm25", key, outputs=[run_path], index_build_s=round(build_s, 3), index_bytes=size,
                            latency=latency, count=corpus.count)
    run = read_trec_run(run_path)
    metrics = evaluate(run, qrels)
    write_json(out / "metrics.json", metrics)
    lat = rec["latency"]
    return SystemResult.from_metrics(
        "bm25", "bm25", "pyserini-lucene-bm25(k1=0.9,b=0.4)", metrics, index_build_s=rec["index_build_s"],
        index_bytes=rec["index_bytes"], bytes_per_doc=round(rec["index_bytes"] / rec["count"], 1),
        search_p50_ms=lat["p50_ms"], search_p95_ms=lat["p95_ms"],
        end_to_end_s=round(rec["index_build_s"] + lat["total_s"], 3), per_query=per_query(run, qrels),
        run=str(run_path))


def model_cost(encoder) -> dict:
    """Parameters, analytic FLOPs per token (at the passage length), bytes and precision of one encoder's model."""
    from effir.compression.info import describe

    cost = describe(encoder.model, seq_len=encoder.spec.passage_max_length)
    return {**{k: cost[k] for k in ("params", "params_non_embedding", "flops_per_token", "model_bytes")},
            "precision": encoder.precision}


def cost_only_system(encoder) -> SystemResult:
    """A row with model cost but no quality (`bench --speed-only`): the timing fills in its speed."""
    return SystemResult(encoder.spec.name, system_kind(encoder.spec), encoder.spec.path, ndcg_10=None,
                        recall_100=None, mrr_10=None, queries=0, **model_cost(encoder))


def dense_system(system: str, dataset, out: Path, split: str, factory: str, encoder) -> SystemResult:
    from effir.pipeline import run_dense

    r = run_dense(dataset, system, out, split=split, factory=factory, spec=encoder.spec, encoder=encoder)
    idx = r["index"]
    lat = r["latency"]
    return SystemResult.from_metrics(
        encoder.spec.name, system_kind(encoder.spec), encoder.spec.path, r, **model_cost(encoder),
        doc_encode_corpus_s=r["doc_encode_s"],
        index_build_s=idx["build_seconds"], index_bytes=idx["bytes_on_disk"], bytes_per_vector=idx["bytes_per_vector"],
        index_peak_memory_bytes=idx["peak_memory_delta_bytes"], search_p50_ms=lat["search"]["p50_ms"],
        search_p95_ms=lat["search"]["p95_ms"], query_encode_p50_ms=lat["query_encode"]["p50_ms"],
        query_encode_p95_ms=lat["query_encode"]["p95_ms"], end_to_end_s=r["end_to_end_s"],
        per_query=r["per_query"], run=r["run"])


def hybrid_system(name: str, halves: list[SystemResult], qrels: dict, out: Path) -> SystemResult:
    """Reciprocal-rank fusion of two systems' runs. A query costs both halves: their p50s (and p95s) are added, an
    estimate that assumes the halves run one after the other."""
    from effir.core.trec import read_trec_run, write_trec_run
    from effir.eval.metrics import evaluate, per_query
    from effir.search.fusion import fuse

    fused, _ = fuse([read_trec_run(h.run) for h in halves], "rrf")
    out.mkdir(parents=True, exist_ok=True)
    write_trec_run(out / "run.trec", fused, name)
    run = {qid: dict(hits) for qid, hits in fused.items()}
    dense = next((h for h in halves if h.kind != "bm25"), halves[-1])
    added = lambda attr: sum(getattr(h, attr) or 0.0 for h in halves)  # noqa: E731
    return SystemResult.from_metrics(
        name, "hybrid", " + ".join(h.name for h in halves) + " (RRF, k=60)", evaluate(run, qrels),
        params=dense.params, params_non_embedding=dense.params_non_embedding, flops_per_token=dense.flops_per_token,
        model_bytes=dense.model_bytes, precision=dense.precision, index_build_s=round(added("index_build_s"), 3),
        index_bytes=int(added("index_bytes")),
        search_p50_ms=round(added("search_p50_ms") + added("query_encode_p50_ms"), 3),
        search_p95_ms=round(added("search_p95_ms") + added("query_encode_p95_ms"), 3),
        end_to_end_s=round(added("end_to_end_s"), 3), per_query=per_query(run, qrels), run=str(out / "run.trec"))
