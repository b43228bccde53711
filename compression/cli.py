import click


@click.group("compress")
def compress():
    """Compress a retriever: analyze, drop, slim, train, the EffiR recipe, info."""
