from __future__ import annotations

import click

from effir.core.options import friendly_errors, model_options, spec_from_options


@click.command("encode")
@model_options
@click.option("--corpus", required=True, type=click.Path(), help="corpus.jsonl (BEIR) or a JsonCollection file/folder")
@click.option("--out", required=True, type=click.Path(), help="folder for Parquet shards + manifest.json")
@click.option("--shard-size", default=4096, show_default=True, type=click.IntRange(min=1), help="documents per shard")
@click.option("--embedding-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--max-tokens", default=8192, show_default=True, type=click.IntRange(min=1), help="padded tokens per batch")
@click.option("--skip-bad", is_flag=True, help="write rejected lines to OUT/rejected.jsonl and go on")
@click.option("--overwrite", is_flag=True, help="discard shards already in OUT")
@click.option("--save-every", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="seconds between saves of the current shard's finished batches (what a crash can lose)")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: encode shards in Ray Data actors (pip install 'effir[ray]')")
@click.option("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
@click.option("--actors", default=2, show_default=True, help="ray: encoder actors (one model each)")
@click.option("--cpus-per-actor", default=1, show_default=True)
@friendly_errors
def encode_cmd(corpus, out, shard_size, embedding_dtype, max_tokens, skip_bad, overwrite, save_every, engine, ray_address,
               actors, cpus_per_actor, device, dtype, threads, **kw):
    """Encode a corpus into Parquet embedding shards (resumes after a crash)."""
    from pathlib import Path

    from effir.core.data import Corpus
    from effir.core.device import configure_threads
    from effir.encoder.model import Encoder, model_fingerprint
    from effir.encoder.shards import encode_corpus

    spec = spec_from_options(**kw)
    docs = Corpus(corpus, rejects=Path(out) / "rejected.jsonl" if skip_bad else None).validate()
    if docs.rejected:
        click.echo(f"skipped {docs.rejected} bad lines -> {Path(out) / 'rejected.jsonl'}", err=True)
    if engine == "ray":
        from effir.encoder.ray_engine import encode_corpus_ray

        manifest = encode_corpus_ray(spec, docs, out, shard_size, embedding_dtype, overwrite, model_fingerprint(spec),
                                     actors=actors, cpus_per_actor=cpus_per_actor, address=ray_address,
                                     compute_dtype=dtype, max_tokens=max_tokens, checkpoint_s=save_every)
        click.echo(f"wrote {len(manifest['shards'])} shards, {manifest['corpus_count']} embeddings with Ray -> {out}")
        return
    n = configure_threads(threads)
    encoder = Encoder(spec, device=device, dtype=dtype, max_tokens=max_tokens)
    click.echo(f"{spec.name}: {docs.count} documents, device {encoder.device}, {n} threads", err=True)
    manifest = encode_corpus(encoder, docs, out, shard_size=shard_size, dtype=embedding_dtype, overwrite=overwrite,
                             model_fingerprint=model_fingerprint(spec), checkpoint_s=save_every)
    click.echo(f"wrote {len(manifest['shards'])} shards, {manifest['corpus_count']} embeddings of dim "
               f"{manifest['dim']} to {out}")
