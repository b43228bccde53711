from __future__ import annotations

import click

from effir.core.options import friendly_errors, model_options, spec_from_options


def _judged_queries(queries_path, qrels_path):
    from effir.core.data import read_qrels, read_queries

    queries = read_queries(queries_path)
    if qrels_path:
        qrels = read_qrels(qrels_path, query_ids=queries.keys())
        queries = {q: t for q, t in queries.items() if q in qrels}
    return queries


def print_latency(name: str, lat: dict) -> None:
    click.echo(f"{name:>14}: mean {lat['mean_ms']:.2f} ms  p50 {lat['p50_ms']:.2f} ms  p95 {lat['p95_ms']:.2f} ms "
               f"(n={lat['n']})", err=True)


@click.command("search")
@click.option("--index", "index_dir", required=True, type=click.Path(exists=True))
@model_options
@click.option("--queries", type=click.Path(), default=None, help="queries.jsonl to search (with --out)")
@click.option("--query", "text", default=None, help="one query typed by a person: prints the top hits with titles")
@click.option("--qrels", type=click.Path(), default=None, help="search only the queries judged here")
@click.option("--out", type=click.Path(), default=None, help="TREC run file")
@click.option("--k", type=click.IntRange(min=1), default=None, help="hits per query  [default: 1000; --query: 10]")
@click.option("--rerank", type=int, default=None, metavar="K",
              help="re-score the index's top K exactly with the vectors stored in the shards (K ≥ k)")
@click.option("--shards", type=click.Path(), default=None, help="the shards for --rerank (default: the index's own)")
@click.option("--remove-query", is_flag=True, help="drop hits whose docid equals the query id (ArguAna, Quora)")
@click.option("--nprobe", type=int, default=None, help="IVF lists to visit")
@click.option("--ef-search", type=int, default=None, help="HNSW search depth")
@click.option("--mmap", is_flag=True, help="memory-map the index instead of reading it into RAM")
@click.option("--tag", default=None, help="run tag (default: model name)")
@friendly_errors
def search_cmd(index_dir, queries, text, qrels, out, k, rerank, shards, remove_query, nprobe, ef_search, mmap, tag,
               device, dtype, threads, **kw):
    """Encode queries, search a FAISS index, write a TREC run (or print one query's hits); prints latency."""
    from effir.core.device import configure_threads
    from effir.core.trec import write_trec_run
    from effir.search.dense import check_rerank, dense_search
    from effir.search.searcher import Searcher

    if text is not None and (queries or out):
        raise click.UsageError("--query prints hits for one query; leave out --queries and --out")
    if text is None and not (queries and out):
        raise click.UsageError("give --queries and --out (or --query TEXT for one query)")
    k = k or (10 if text is not None else 1000)
    check_rerank(k, rerank)
    judged = _judged_queries(queries, qrels) if text is None else None  # bad input fails before any model loads
    configure_threads(threads)
    searcher = Searcher(index_dir, spec=spec_from_options(**kw), rerank=rerank, shards=shards, nprobe=nprobe,
                        ef_search=ef_search, mmap=mmap, device=device, dtype=dtype)
    if text is not None:
        for hit in searcher.search(text, k=k):
            click.echo(f"{hit.rank:>3}  {hit.score:8.4f}  {hit.docid:<16} {hit.title or ''}")
        return
    results, lat = dense_search(searcher.encoder, searcher.index, judged, k=k, remove_query=remove_query,
                                rerank=searcher.rerank)
    write_trec_run(out, results, tag or searcher.encoder.spec.name)
    print_latency("query encode", lat["query_encode"])
    print_latency("search", lat["search"])
    click.echo(f"wrote {len(results)} queries to {out}")


@click.command("fuse")
@click.option("--run", "runs", multiple=True, required=True, type=click.Path(), help="a TREC run (two or more)")
@click.option("--method", type=click.Choice(["rrf", "interp"]), default="rrf", show_default=True)
@click.option("--rrf-k", default=60, show_default=True, type=click.IntRange(min=0))
@click.option("--weights", default=None, help="interpolation weights, one per run, e.g. 0.3,0.7")
@click.option("--depth", default=1000, show_default=True, type=click.IntRange(min=1), help="hits read per run")
@click.option("--k", default=1000, show_default=True, type=click.IntRange(min=1), help="hits written per query")
@click.option("--out", required=True, type=click.Path(), help="fused TREC run")
@click.option("--tag", default="fused", show_default=True)
@friendly_errors
def fuse_cmd(runs, method, rrf_k, weights, depth, k, out, tag):
    """Fuse TREC runs (reciprocal-rank fusion or min-max interpolation) into one."""
    from effir.core.trec import read_trec_run, write_trec_run
    from effir.search.fusion import fuse

    w = None
    if weights:
        try:
            w = [float(x) for x in weights.split(",")]
        except ValueError:
            raise click.UsageError(f"--weights {weights!r}: numbers separated by commas") from None
    fused, partial = fuse([read_trec_run(r) for r in runs], method, rrf_k, w, depth, k)
    if partial:
        click.echo(f"warning: {partial} queries are in only some of the runs; fused from the runs that have them",
                   err=True)
    write_trec_run(out, fused, tag)
    click.echo(f"fused {len(runs)} runs ({method}) into {len(fused)} queries -> {out}")


@click.command("bm25")
@click.option("--dataset", required=True, type=click.Path(exists=True), help="BEIR dataset folder")
@click.option("--out", required=True, type=click.Path(), help="TREC run file")
@click.option("--split", default="test", show_default=True, help="search the queries judged in qrels/<split>.tsv")
@click.option("--work", type=click.Path(), default=None, help="where the Lucene index goes (default: beside --out)")
@click.option("--k", default=1000, show_default=True, type=click.IntRange(min=1), help="hits per query")
@click.option("--k1", default=0.9, show_default=True)
@click.option("--b", default=0.4, show_default=True)
@click.option("--remove-query", is_flag=True)
@click.option("--threads", default=2, show_default=True)
@friendly_errors
def bm25_cmd(dataset, out, split, work, k, k1, b, remove_query, threads):
    """Lucene BM25 (flat) through Pyserini; writes a TREC run."""
    from pathlib import Path

    from effir.core.data import BeirDataset
    from effir.core.trec import write_trec_run
    from effir.search.bm25 import bm25_search, build_lucene_index

    ds = BeirDataset(dataset)
    corpus = ds.corpus()
    queries = ds.queries()
    qrels = ds.qrels(split, corpus, queries)
    work = Path(work) if work else Path(out).parent / f"bm25-{ds.name}"
    index_dir = build_lucene_index(corpus, work, threads=threads)
    results = bm25_search(index_dir, {q: queries[q] for q in qrels}, k=k, k1=k1, b=b, threads=threads,
                          remove_query=remove_query)
    write_trec_run(out, results, "bm25")
    click.echo(f"wrote {len(results)} queries to {out}")
