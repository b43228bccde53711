from __future__ import annotations

import click

from effir.core.options import friendly_errors


@click.command("index")
@click.option("--shards", required=True, type=click.Path(exists=True), help="folder written by `effir encode`")
@click.option("--out", required=True, type=click.Path(), help="index folder")
@click.option("--factory", default="Flat", show_default=True, help="FAISS factory string: Flat, HNSW32, IVF256,PQ32, ...")
@click.option("--train-size", type=int, default=None,
              help="vectors sampled to train IVF/PQ (default: max(100,000, 40 per IVF list))")
@click.option("--no-gpu", is_flag=True, help="build on CPU even when faiss sees GPUs")
@click.option("--threads", type=int, default=None)
@friendly_errors
def index_cmd(shards, out, factory, train_size, no_gpu, threads):
    """Build a FAISS inner-product index from embedding shards."""
    from effir.core.device import configure_threads
    from effir.index.build import build_index

    configure_threads(threads)
    meta = build_index(shards, out, factory=factory, train_size=train_size, use_gpu=not no_gpu)
    click.echo(f"{meta['factory']}: {meta['count']} vectors, {meta['build_seconds']:.2f}s, "
               f"{meta['bytes_on_disk'] / 1e6:.1f} MB ({meta['bytes_per_vector']} B/vector), "
               f"peak RSS {meta['peak_memory_bytes'] / 1e6:.0f} MB -> {out}")
