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
@click.option("--queries", required=True, type=click.Path())
@click.option("--qrels", type=click.Path(), default=None, help="search only the queries judged here")
@click.option("--out", required=True, type=click.Path(), help="TREC run file")
@click.option("--k", default=1000, show_default=True, type=click.IntRange(min=1), help="hits per query")
@click.option("--remove-query", is_flag=True, help="drop hits whose docid equals the query id (ArguAna, Quora)")
@click.option("--nprobe", type=int, default=None, help="IVF lists to visit")
@click.option("--ef-search", type=int, default=None, help="HNSW search depth")
@click.option("--mmap", is_flag=True, help="memory-map the index instead of reading it into RAM")
@click.option("--tag", default=None, help="run tag (default: model name)")
@friendly_errors
def search_cmd(index_dir, queries, qrels, out, k, remove_query, nprobe, ef_search, mmap, tag, device, dtype, threads,
               **kw):
    """Encode queries, search a FAISS index, write a TREC run; prints latency."""
    from effir.core.device import configure_threads
    from effir.core.trec import write_trec_run
    from effir.encoder.model import Encoder
    from effir.index.build import LoadedIndex
    from effir.search.dense import dense_search

    spec = spec_from_options(**kw)
    qs = _judged_queries(queries, qrels)
    configure_threads(threads)
    index = LoadedIndex(index_dir, nprobe=nprobe, ef_search=ef_search, mmap=mmap)
    encoder = Encoder(spec, device=device, dtype=dtype)
    results, lat = dense_search(encoder, index, qs, k=k, remove_query=remove_query)
    write_trec_run(out, results, tag or spec.name)
    print_latency("query encode", lat["query_encode"])
    print_latency("search", lat["search"])
    click.echo(f"wrote {len(results)} queries to {out}")


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
