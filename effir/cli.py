"""`effir`: one command per stage, mounted from the stage packages."""

from __future__ import annotations

import logging
import os
import warnings

import click

from effir.core.options import friendly_errors, model_options, spec_from_options


@click.group()
@click.version_option(package_name="effir")
@click.option("--debug", is_flag=True, help="show the traceback of an input error instead of one line")
def main(debug):
    """effir: EffiR-compressed dense retrievers, from a BEIR corpus to nDCG@10."""
    from effir.core.options import DEBUG

    DEBUG["on"] = debug
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    log = logging.getLogger("effir")  # library code logs; the CLI shows effir's own messages on stderr
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # pyserini's import configures the root logger, which would print every line again
    warnings.filterwarnings("ignore", category=FutureWarning)


@main.command("run")
@click.option("--dataset", required=True, type=click.Path(exists=True), help="BEIR dataset folder")
@model_options
@click.option("--out", required=True, type=click.Path())
@click.option("--split", default="test", show_default=True)
@click.option("--factory", default="Flat", show_default=True)
@click.option("--k", default=1000, show_default=True, type=click.IntRange(min=1), help="hits per query")
@click.option("--remove-query", is_flag=True)
@friendly_errors
def run_cmd(dataset, out, split, factory, k, remove_query, device, dtype, threads, **kw):
    """encode → index → search → eval for one dataset and model."""
    from effir.core.device import configure_threads
    from effir.eval.cli import metrics_table
    from effir.pipeline import run_dense

    spec = spec_from_options(**kw)
    n = configure_threads(threads)
    click.echo(f"{spec.name} on {dataset}: {n} threads", err=True)
    result = run_dense(dataset, spec.name, out, split=split, factory=factory, k=k, device=device, dtype=dtype,
                       spec=spec, remove_query=remove_query)
    click.echo(metrics_table([(spec.name, result)]))
    click.echo(f"encode {result['doc_encode_s']:.1f}s, index {result['index']['build_seconds']:.2f}s, "
               f"query encode p50 {result['latency']['query_encode']['p50_ms']:.1f} ms, "
               f"search p50 {result['latency']['search']['p50_ms']:.2f} ms -> {out}/metrics.json")


def _mount():
    from effir.bench import bench_cmd
    from effir.compression.cli import compress
    from effir.download import download_cmd
    from effir.encoder.cli import encode_cmd
    from effir.eval.cli import eval_cmd, replot_cmd
    from effir.index.cli import index_cmd
    from effir.search.cli import bm25_cmd, fuse_cmd, search_cmd

    for cmd in (encode_cmd, index_cmd, search_cmd, bm25_cmd, fuse_cmd, eval_cmd, replot_cmd, compress, bench_cmd,
                download_cmd):
        main.add_command(cmd)


_mount()
if __name__ == "__main__":
    main()
