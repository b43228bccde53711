"""TREC run files (`qid Q0 docid rank score tag`): what every search writes and eval reads."""

from __future__ import annotations

from pathlib import Path

from effir.core.data import DatasetError
from effir.core.files import atomic_path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, None, "file not found")
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            cols = line.split()
            if len(cols) != 6:
                raise DatasetError(path, lineno, f"expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}")
            try:
                run.setdefault(cols[0], {})[cols[2]] = float(cols[4])
            except ValueError:
                raise DatasetError(path, lineno, f"score {cols[4]!r} is not a number") from None
    return run


def write_trec_run(path: str | Path, results: dict[str, list[tuple[str, float]]], tag: str) -> None:
    """results: qid -> [(docid, score)] already ranked. Written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for qid, hits in results.items():
            for rank, (docid, score) in enumerate(hits, 1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
