"""`effir download`: a public BEIR dataset into a local folder."""

from __future__ import annotations

from pathlib import Path

import click

from effir.core.options import friendly_errors

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# the collections BEIR publishes as zips (bioasq, signal1m, trec-news and robust04 need a licence and are not there)
BEIR_PUBLIC = ("msmarco", "trec-covid", "nfcorpus", "nq", "hotpotqa", "fiqa", "arguana", "webis-touche2020",
               "cqadupstack", "quora", "dbpedia-entity", "scidocs", "fever", "climate-fever", "scifact")


@click.command("download")
@click.argument("name", type=click.Choice(BEIR_PUBLIC))
@click.option("--out", default="data/beir", show_default=True, type=click.Path())
@friendly_errors
def download_cmd(name, out):
    """Fetch a BEIR dataset (public zip) into OUT/NAME."""
    import io
    import shutil
    import urllib.error
    import urllib.request
    import zipfile

    from effir.core.files import atomic_path

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
