"""The domain errors: a user's input that cannot be used. The CLI turns each into one line and exit code 2."""

from __future__ import annotations


class EffirError(ValueError):
    """Bad or mismatched input (a file, a folder, a flag); the message names it and says what is wrong."""
