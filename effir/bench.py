"""`effir bench`: every stage for each system on one dataset, then the full-versus-compressed report.

Quality comes from the cached pipeline (a rerun reproduces it exactly). Speed comes from one interleaved
timing run on the same inputs: after a warm-up, the systems encode the same document sample and the same
queries in turn (A B C, A B C, ...), and medians over rounds are compared as ratios against the reference.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import click

from effir.core.options import friendly_errors
from effir.systems import (
    check_parents,
    describe_training,
    parse_systems,
    resolve_parents,
)


def _system_kind(spec) -> str:
    modified = (spec.is_compressed or spec.extra.get("quantization") or spec.extra.get("sparsity")
                or spec.extra.get("shadow"))
    return "compressed" if modified else "full"


def bm25_system(dataset, out: Path, split: str) -> dict:
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
    if rec is None or not run_path.exists():
        t0 = time.perf_counter()
        index_dir = build_lucene_index(corpus, out)
        build_s = time.perf_counter() - t0
        results, latency = bm25_search_timed(index_dir, {q: queries[q] for q in qrels})
        write_trec_run(run_path, results, "bm25")
        size = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
        rec = stages.record("bm25", key, index_build_s=round(build_s, 3), index_bytes=size, latency=latency,
                            count=corpus.count)
    run = read_trec_run(run_path)
    metrics = evaluate(run, qrels)
    write_json(out / "metrics.json", metrics)
    lat = rec["latency"]
    return {"name": "bm25", "kind": "bm25", "model": "pyserini-lucene-bm25(k1=0.9,b=0.4)", **metrics,
            "index_build_s": rec["index_build_s"], "index_bytes": rec["index_bytes"],
            "bytes_per_vector": None, "bytes_per_doc": round(rec["index_bytes"] / rec["count"], 1),
            "index_peak_memory_bytes": None,
            "search_p50_ms": lat["p50_ms"], "search_p95_ms": lat["p95_ms"],
            "end_to_end_s": round(rec["index_build_s"] + lat["total_s"], 3),
            "per_query": per_query(run, qrels)}


def dense_system(system: str, dataset, out: Path, split: str, factory: str, encoder) -> dict:
    from effir.compression.info import describe
    from effir.pipeline import run_dense

    r = run_dense(dataset, system, out, split=split, factory=factory, spec=encoder.spec, encoder=encoder)
    cost = describe(encoder.model, seq_len=encoder.spec.passage_max_length)
    idx = r["index"]
    return {"name": encoder.spec.name, "kind": _system_kind(encoder.spec), "model": encoder.spec.path,
            "ndcg@10": r["ndcg@10"], "recall@100": r["recall@100"], "mrr@10": r["mrr@10"], "queries": r["queries"],
            "params": cost["params"], "params_non_embedding": cost["params_non_embedding"],
            "flops_per_token": cost["flops_per_token"], "model_bytes": cost["model_bytes"],
            "doc_encode_corpus_s": r["doc_encode_s"],
            "index_build_s": idx["build_seconds"], "index_bytes": idx["bytes_on_disk"],
            "bytes_per_vector": idx["bytes_per_vector"], "index_peak_memory_bytes": idx["peak_memory_delta_bytes"],
            "search_p50_ms": r["latency"]["search"]["p50_ms"], "search_p95_ms": r["latency"]["search"]["p95_ms"],
            "end_to_end_s": r["end_to_end_s"], "per_query": r["per_query"]}


def run_bench(dataset, systems: list[str], out: Path, split: str = "test", factory: str = "Flat",
              timing_docs: int = 256, timing_queries: int = 100, rounds: int = 5, reference: str | None = None,
              seed: int = 0, work: Path | None = None, parents: dict[str, str] | None = None,
              control: bool = False, query_batch: int = 32) -> dict:
    from effir import speed
    from effir.compression.info import flops_per_token
    from effir.compression.steps import analyze
    from effir.core.data import BeirDataset, sample_texts
    from effir.core.device import describe_machine
    from effir.core.models import resolve
    from effir.encoder.model import Encoder
    from effir.eval import report
    from effir.eval.significance import compare

    out.mkdir(parents=True, exist_ok=True)
    work = Path(work) if work else out / "systems"
    ds = BeirDataset(dataset)
    rows, encoders = [], {}
    named = parse_systems(systems)
    check_parents([n for n, _ in named], parents or {})
    dense = [n for n, model in named if model != "bm25"]
    if reference is not None and reference not in dense:
        raise click.UsageError(f"--reference {reference!r}: speedups are measured against a dense encoder; "
                               f"one of {dense}")
    for name, system in named:
        if system == "bm25":
            click.echo("== bm25", err=True)
            rows.append(bm25_system(dataset, work / ds.name / "bm25", split))
            continue
        spec = resolve(system)
        spec.name = name
        click.echo(f"== {name}", err=True)
        enc = Encoder(spec)
        encoders[name] = enc
        row = dense_system(system, dataset, work / ds.name / name, split, factory, enc)
        row.update(trained=describe_training(spec), made_from=spec.extra.get("made_from"))
        rows.append(row)
    by_name = {r["name"]: r for r in rows}
    ref = reference or next((r["name"] for r in rows if r["kind"] == "full"), None)
    resolve_parents(rows, parents or {})

    timing, control_row = {}, None
    rng = random.Random(seed)
    doc_sample = [d.contents for d in rng.sample(list(ds.corpus()), min(timing_docs, ds.corpus().count))]
    query_sample = rng.sample(list(ds.queries().values()), min(timing_queries, len(ds.queries())))
    if encoders:
        timed = dict(encoders)
        if control and ref in encoders:  # the reference once more, as a second system: must read 1.00x
            timed[f"{ref}-control"] = Encoder(encoders[ref].spec)
        timing = speed.figures(speed.interleaved_timing(timed, doc_sample, query_sample, rounds, query_batch),
                               ref if ref in encoders else None, len(doc_sample))
        if control and ref in encoders:
            control_row = speed.control_verdict(timing[f"{ref}-control"])
    lengths = _median_lengths(encoders[ref], doc_sample, query_sample) if ref in encoders else None

    for r in rows:
        r.update(timing.get(r["name"], {}))
        for key in ("doc_encode_s", "query_encode_s", "doc_speedup", "query_speedup", "params",
                    "params_non_embedding", "flops_per_token", "model_bytes", "parent", "trained"):
            r.setdefault(key, None)
        r["p_value_vs_full"] = (compare(r["per_query"], by_name[ref]["per_query"])["p_randomization"]
                                if ref and r["name"] != ref else None)
        parent = by_name.get(r["parent"])
        r["retention"] = round(r["ndcg@10"] / parent["ndcg@10"], 4) if parent and parent["ndcg@10"] else None
        r["p_value_vs_parent"] = compare(r["per_query"], parent["per_query"])["p_randomization"] if parent else None
        if lengths and r["name"] in encoders and r["name"] != ref:
            model, ref_model = encoders[r["name"]].model, encoders[ref].model
            r["flops_ratio"] = round(flops_per_token(ref_model, lengths[0]) / flops_per_token(model, lengths[0]), 3)
            r["query_flops_ratio"] = round(flops_per_token(ref_model, lengths[1]) / flops_per_token(model, lengths[1]), 3)
        elif r["name"] == ref:
            r["flops_ratio"] = r["query_flops_ratio"] = 1.0

    importance_png = None
    if ref in encoders:
        analyze(encoders[ref].spec.path, out / "importance", sample_texts(ds.corpus(), 256, seed))
        importance_png = "importance/importance.png"

    result = {"dataset": ds.name, "split": split, "factory": factory, "reference": ref,
              "machine": describe_machine(),
              "timing": {"docs": len(doc_sample) if encoders else 0, "queries": len(query_sample) if encoders else 0,
                         "rounds": rounds, "query_batch": query_batch,
                         "median_tokens": {"doc": lengths[0], "query": lengths[1]} if lengths else None,
                         "order": "alternating A B C / C B A after one warm-up round; medians of per-round ratios",
                         "control": control_row,
                         "precision": "fp16" if any(e.device.startswith("cuda") for e in encoders.values()) else "fp32"},
              "systems": rows}
    report.write_report(result, out, importance_png=importance_png)
    return result


def _median_lengths(encoder, docs: list[str], queries: list[str]) -> tuple[int, int]:
    """Median tokens per document and per query as the reference encoder sees them: the FLOP model's lengths."""
    return (int(statistics.median(map(len, encoder.tokenize(docs, "passage")))),
            int(statistics.median(map(len, encoder.tokenize(queries, "query")))))


@click.command("bench")
@click.option("--dataset", required=True, type=click.Path(exists=True), help="BEIR dataset folder")
@click.option("--systems", default="bm25,minilm", show_default=True,
              help="comma-separated: bm25, registry names, model folders (full or compressed); NAME=MODEL labels one")
@click.option("--out", required=True, type=click.Path())
@click.option("--split", default="test", show_default=True)
@click.option("--factory", default="Flat", show_default=True)
@click.option("--reference", default=None, help="system the speedups are against (default: first full model)")
@click.option("--parent", "parents", multiple=True, metavar="CHILD=PARENT",
              help="the system CHILD was made from (retention and p-value against it); default: read from effir.json")
@click.option("--timing-docs", default=256, show_default=True, help="documents in the interleaved timing sample")
@click.option("--timing-queries", default=100, show_default=True)
@click.option("--query-batch", default=32, show_default=True, help="batch size of the batched query timing")
@click.option("--rounds", default=5, show_default=True, help="timing rounds (medians of per-round ratios)")
@click.option("--control", is_flag=True, help="also time the reference as a second system: must read 1.00x ± 0.05")
@click.option("--work", type=click.Path(), default=None,
              help="where each system's shards, index and run go (default OUT/systems); share it between benches "
                   "to reuse finished stages")
@click.option("--threads", type=int, default=None)
@friendly_errors
def bench_cmd(dataset, systems, out, split, factory, reference, parents, timing_docs, timing_queries, query_batch,
              rounds, control, work, threads):
    """Full versus compressed: quality, model cost, interleaved speed, index cost -> report.md/json + plots."""
    from effir.core.device import configure_threads
    from effir.eval.report import terminal_table

    pairs = {}
    for item in parents:
        child, sep, parent = item.partition("=")
        if not sep or not child or not parent:
            raise click.UsageError(f"--parent {item!r}: expected CHILD=PARENT")
        pairs[child] = parent
    n = configure_threads(threads)
    click.echo(f"{n} threads", err=True)
    result = run_bench(dataset, [s.strip() for s in systems.split(",") if s.strip()], Path(out), split, factory,
                       timing_docs, timing_queries, rounds, reference, work=work, parents=pairs, control=control,
                       query_batch=query_batch)
    click.echo(terminal_table(result))
    click.echo(f"-> {out}/report.md, {out}/report.json")
