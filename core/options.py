"""Command-line options that several stages share, and the error handling every command uses."""

from __future__ import annotations

import functools

import click

from effir.core.errors import EffirError
from effir.core.models import POOLINGS


def model_options(f):
    """--model plus the encoding overrides (pooling, prefixes, lengths)."""
    opts = [
        click.option("--model", "-m", required=True, help="registry name (minilm, smollm2-135m), model folder or hub id"),
        click.option("--pooling", type=click.Choice(POOLINGS), default=None, help="override pooling"),
        click.option("--query-prefix", default=None, help="override the query prefix"),
        click.option("--passage-prefix", default=None, help="override the passage prefix"),
        click.option("--query-max-length", type=int, default=None),
        click.option("--passage-max-length", type=int, default=None),
        click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]"),
        click.option("--dtype", default="auto", show_default=True, help="auto (fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16"),
        click.option("--threads", type=int, default=None, help="CPU threads (default: the free cores)"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def spec_from_options(model, pooling=None, query_prefix=None, passage_prefix=None, query_max_length=None,
                      passage_max_length=None, **_):
    from effir.core.models import resolve

    return resolve(model, pooling=pooling, query_prefix=query_prefix, passage_prefix=passage_prefix,
                   query_max_length=query_max_length, passage_max_length=passage_max_length)


class InputError(click.ClickException):
    """A user's mistake: one line `error: ...` on stderr and exit code 2 (as click's usage errors), no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


DEBUG = {"on": False}  # set by `effir --debug`: show the traceback instead of the one line


def friendly_errors(f):
    """Bad input and known failures become one clear line and exit code 2, not a traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (EffirError, FileNotFoundError) as e:
            if DEBUG["on"]:
                raise
            raise InputError(str(e)) from e

    return wrapper
