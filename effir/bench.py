import click


@click.command("bench")
def bench_cmd():
    """(placeholder)"""


@click.command("download")
def download_cmd():
    """(placeholder)"""
