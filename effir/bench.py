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

from effir.options import friendly_errors


def _system_kind(spec) -> str:
    modified = spec.is_compressed or spec.extra.get("quantization") or spec.extra.get("sparsity")
    return "compressed" if modified else "full"


def _safe_name(system: str) -> str:
    return Path(system).name.replace("/", "_") or system


def bm25_system(dataset, out: Path, split: str) -> dict:
    from effir.data import BeirDataset, read_trec_run, write_trec_run
    from effir.eval.metrics import evaluate, per_query
    from effir.files import write_json
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


def interleaved_timing(encoders: dict, docs: list[str], queries: list[str], rounds: int, progress=True) -> dict:
    """name -> {"doc_encode_s": median, "query_encode_s": median} over `rounds`, after one warm-up round."""
    times = {name: {"doc": [], "query": []} for name in encoders}
    warm_docs = docs[: max(1, len(docs) // 8)]
    for enc in encoders.values():  # warm-up: allocator, kernels, caches
        enc.encode(warm_docs)
        enc.encode(queries[:4], side="query")
    for r in range(rounds):
        order = list(encoders) if r % 2 == 0 else list(reversed(encoders))  # A B C, C B A, ...
        for name in order:
            enc = encoders[name]
            t0 = time.perf_counter()
            enc.encode(docs)
            t1 = time.perf_counter()
            for q in queries:  # one query at a time: online latency
                enc.encode([q], side="query")
            t2 = time.perf_counter()
            times[name]["doc"].append(t1 - t0)
            times[name]["query"].append(t2 - t1)
        if progress:
            click.echo(f"timing round {r + 1}/{rounds}: " + ", ".join(
                f"{n} {times[n]['doc'][-1]:.1f}s" for n in encoders), err=True)
    return {name: {"doc_encode_s": round(statistics.median(t["doc"]), 4),
                   "query_encode_s": round(statistics.median(t["query"]), 4),
                   "doc_encode_rounds": [round(x, 4) for x in t["doc"]],
                   "query_encode_rounds": [round(x, 4) for x in t["query"]]} for name, t in times.items()}


def run_bench(dataset, systems: list[str], out: Path, split: str = "test", factory: str = "Flat",
              timing_docs: int = 256, timing_queries: int = 100, rounds: int = 3, reference: str | None = None,
              seed: int = 0, work: Path | None = None) -> dict:
    from effir.compression.steps import analyze
    from effir.data import BeirDataset, sample_texts
    from effir.device import describe_machine
    from effir.encoder.model import Encoder
    from effir.eval import report
    from effir.eval.significance import compare
    from effir.models import resolve

    out.mkdir(parents=True, exist_ok=True)
    work = Path(work) if work else out / "systems"
    ds = BeirDataset(dataset)
    rows, encoders = [], {}
    for system in systems:
        if system == "bm25":
            click.echo("== bm25", err=True)
            rows.append(bm25_system(dataset, work / ds.name / "bm25", split))
            continue
        spec = resolve(system)
        spec.name = _safe_name(system)
        click.echo(f"== {spec.name}", err=True)
        enc = Encoder(spec)
        encoders[spec.name] = enc
        rows.append(dense_system(system, dataset, work / ds.name / spec.name, split, factory, enc))
    by_name = {r["name"]: r for r in rows}
    ref = reference or next((r["name"] for r in rows if r["kind"] == "full"), None)
    if ref is not None and ref not in by_name:
        raise click.ClickException(f"--reference {ref!r} is not one of the systems {list(by_name)}")

    timing = {}
    if encoders:
        rng = random.Random(seed)
        corpus = list(ds.corpus())
        queries = list(ds.queries().values())
        doc_sample = [d.contents for d in rng.sample(corpus, min(timing_docs, len(corpus)))]
        query_sample = rng.sample(queries, min(timing_queries, len(queries)))
        timing = interleaved_timing(encoders, doc_sample, query_sample, rounds)

    for r in rows:
        t = timing.get(r["name"])
        r["doc_encode_s"] = t["doc_encode_s"] if t else None
        r["query_encode_s"] = t["query_encode_s"] if t else None
        if t:
            r["docs_per_s"] = round(len(doc_sample) / t["doc_encode_s"], 2)
        rt = timing.get(ref) if ref else None
        r["doc_speedup"] = round(rt["doc_encode_s"] / t["doc_encode_s"], 3) if t and rt else None
        r["query_speedup"] = round(rt["query_encode_s"] / t["query_encode_s"], 3) if t and rt else None
        r["p_value_vs_full"] = (compare(r["per_query"], by_name[ref]["per_query"])["p_randomization"]
                                if ref and r["name"] != ref else None)
        for key in ("params", "params_non_embedding", "flops_per_token", "model_bytes"):
            r.setdefault(key, None)
        if ref and r.get("flops_per_token") and by_name[ref].get("flops_per_token"):
            r["flops_ratio"] = round(by_name[ref]["flops_per_token"] / r["flops_per_token"], 3)

    importance_png = None
    if ref:
        analyze(encoders[ref].spec.path, out / "importance", sample_texts(ds.corpus(), 256, seed))
        importance_png = "importance/importance.png"

    result = {"dataset": ds.name, "split": split, "factory": factory, "reference": ref,
              "machine": describe_machine(),
              "timing": {"docs": min(timing_docs, ds.corpus().count) if encoders else 0,
                         "queries": len(query_sample) if encoders else 0, "rounds": rounds,
                         "order": "alternating A B C / C B A after one warm-up round; medians",
                         "precision": "fp16" if any(e.device.startswith("cuda") for e in encoders.values()) else "fp32"},
              "systems": rows}
    report.write_report(result, out, importance_png=importance_png)
    return result


@click.command("bench")
@click.option("--dataset", required=True, type=click.Path(exists=True), help="BEIR dataset folder")
@click.option("--systems", default="bm25,minilm", show_default=True,
              help="comma-separated: bm25, registry names, model folders (full or compressed)")
@click.option("--out", required=True, type=click.Path())
@click.option("--split", default="test", show_default=True)
@click.option("--factory", default="Flat", show_default=True)
@click.option("--reference", default=None, help="system the speedups and p-values are against (default: first full model)")
@click.option("--timing-docs", default=256, show_default=True, help="documents in the interleaved timing sample")
@click.option("--timing-queries", default=100, show_default=True)
@click.option("--rounds", default=3, show_default=True, help="timing rounds (medians)")
@click.option("--work", type=click.Path(), default=None,
              help="where each system's shards, index and run go (default OUT/systems); share it between benches "
                   "to reuse finished stages")
@click.option("--threads", type=int, default=None)
@friendly_errors
def bench_cmd(dataset, systems, out, split, factory, reference, timing_docs, timing_queries, rounds, work, threads):
    """Full versus compressed: quality, model cost, interleaved speed, index cost -> report.md/json + plots."""
    from effir.device import configure_threads
    from effir.eval.report import terminal_table

    configure_threads(threads)
    result = run_bench(dataset, [s.strip() for s in systems.split(",") if s.strip()], Path(out), split, factory,
                       timing_docs, timing_queries, rounds, reference, work=work)
    click.echo(terminal_table(result))
    click.echo(f"-> {out}/report.md, {out}/report.json")


BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"


@click.command("download")
@click.argument("name")
@click.option("--out", default="data/beir", show_default=True, type=click.Path())
@friendly_errors
def download_cmd(name, out):
    """Fetch a BEIR dataset (public zip) into OUT/NAME."""
    import io
    import shutil
    import urllib.error
    import urllib.request
    import zipfile

    from effir.files import atomic_path

    url = BEIR_URL.format(name=name)
    target = Path(out) / name
    if (target / "corpus.jsonl").exists():
        click.echo(f"{target} already present")
        return
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise click.ClickException(f"cannot download {url}: {e}. Without network access, copy the BEIR folder "
                                   f"(corpus.jsonl, queries.jsonl, qrels/) to {target} yourself.") from e
    with atomic_path(target) as tmp, zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp.parent / (tmp.name + "-unzip"))
        shutil.move(str(tmp.parent / (tmp.name + "-unzip") / name), tmp)
        shutil.rmtree(tmp.parent / (tmp.name + "-unzip"))
    click.echo(f"-> {target}")
