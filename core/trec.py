"""TREC run files (`qid Q0 docid rank score tag`): what every search writes and eval reads."""

from __future__ import annotations

import math
from pathlib import Path

from effir.core.data import DatasetError, text_lines
from effir.core.files import atomic_path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """qid -> {docid: score} from `qid Q0 docid rank score tag` lines; any other line is an error naming it."""
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    for lineno, line in text_lines(path):
        cols = line.split()
        if len(cols) != 6:
            raise DatasetError(path, lineno, f"expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}")
        try:
            score = float(cols[4])
        except ValueError:
            raise DatasetError(path, lineno, f"score {cols[4]!r} is not a number") from None
        if not math.isfinite(score):
            raise DatasetError(path, lineno, f"score {cols[4]!r} is not a finite number")
        run.setdefault(cols[0], {})[cols[2]] = score
    return run


def write_trec_run(path: str | Path, results: dict[str, list[tuple[str, float]]], tag: str) -> None:
    """results: qid -> [(docid, score)] already ranked. Written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for qid, hits in results.items():
            for rank, (docid, score) in enumerate(hits, 1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
