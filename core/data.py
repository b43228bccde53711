"""BEIR datasets and Pyserini JsonCollections, validated while streaming (one idea: reading BEIR input and
refusing what is wrong with it, so it is longer than most modules).

Every problem is reported as `file:line: problem`. Readers either stop at the first bad line
(the default, before any output is written) or, with `skip_bad`, write the rejected lines to a
sidecar JSONL file and go on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from effir.core.errors import EffirError


class DatasetError(EffirError):
    """Bad input: names the file, the line (1-based, when there is one) and the problem."""

    def __init__(self, path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Document:
    docid: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """What an encoder or BM25 sees: `title + " " + text`."""
        return f"{self.title} {self.text}".strip()


def _check_id(value, path, line, field) -> str:
    if value is None:
        raise DatasetError(path, line, f"missing `{field}`")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError(path, line, f"`{field}` must be a string or integer, got {type(value).__name__}")
    ident = str(value)
    if not ident or any(c.isspace() for c in ident):
        raise DatasetError(path, line, f"`{field}` {ident!r} is empty or contains whitespace (TREC runs cannot hold it)")
    return ident


def _check_text(obj, key, path, line) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(path, line, f"`{key}` must be a string, got {type(value).__name__}")
    return value


def _jsonl_records(path: Path) -> Iterator[tuple[int, bytes, dict]]:
    """(line number, raw bytes, object) for each non-blank line; raises DatasetError on bad lines."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, raw, DatasetError(path, lineno, f"invalid UTF-8 at byte {e.start}")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, raw, DatasetError(path, lineno, f"malformed JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(obj, dict):
                yield lineno, raw, DatasetError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, raw, obj


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for each non-blank line of a text file; a missing file or invalid UTF-8 is a
    DatasetError naming the file and line (the tabular readers: qrels, TREC runs)."""
    if not path.exists():
        raise DatasetError(path, None, "file not found")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise DatasetError(path, lineno, f"invalid UTF-8 at byte {e.start}") from None
            if line:
                yield lineno, line


class Rejects:
    """Collects bad lines: raises at once (strict), or appends them to a sidecar JSONL file."""

    def __init__(self, sidecar: str | Path | None):
        self.sidecar = Path(sidecar) if sidecar else None
        self.count = 0
        self._fh = None

    def reject(self, error: DatasetError, raw: bytes | str | None = None):
        if self.sidecar is None:
            raise error
        if self._fh is None:
            self.sidecar.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.sidecar, "w", encoding="utf-8")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        rec = {"file": error.path, "line": error.line, "problem": error.problem, "raw": (raw or "").rstrip("\n")}
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self):
        if self._fh:
            self._fh.close()
            self._fh = None


def _corpus_files(path: Path) -> list[Path]:
    if path.is_dir():  # a Pyserini JsonCollection folder
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
        if not files:
            raise DatasetError(path, None, "folder holds no .jsonl/.json files")
        return files
    if not path.exists():
        raise DatasetError(path, None, "file not found")
    return [path]


def _parse_document(obj: dict, path, lineno) -> Document:
    if "_id" in obj or "contents" not in obj:  # BEIR: _id, title, text
        docid = _check_id(obj.get("_id"), path, lineno, "_id")
        return Document(docid, _check_text(obj, "title", path, lineno), _check_text(obj, "text", path, lineno))
    # Pyserini JsonCollection: id, contents
    docid = _check_id(obj.get("id"), path, lineno, "id")
    return Document(docid, "", _check_text(obj, "contents", path, lineno))


_VALIDATED: dict[tuple, tuple] = {}  # (files, sizes, mtimes, rejects) -> what validate() found


class Corpus:
    """A validated corpus: the first pass checks every line (and counts), iteration streams documents.

    Strict mode raises on the first bad line during `validate()`, before the caller writes anything.
    """

    def __init__(self, path: str | Path, rejects: str | Path | None = None):
        self.path = Path(path)
        self.files = _corpus_files(self.path)
        self._rejects_path = rejects
        self._bad: set[tuple[str, int]] = set()
        self.count: int | None = None
        self.rejected = 0

    def _stat_key(self) -> tuple:
        return (tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in self.files),
                str(self._rejects_path))

    def validate(self) -> "Corpus":
        """Check every line once; an unchanged corpus validated before in this process is not read again."""
        key = self._stat_key()
        if key in _VALIDATED:
            self.count, self.rejected, self._bad, self.ids = _VALIDATED[key]
            return self
        rejects = Rejects(self._rejects_path)
        seen: dict[str, tuple[str, int]] = {}
        count = 0
        try:
            for file in self.files:
                for lineno, raw, obj in _jsonl_records(file):
                    try:
                        if isinstance(obj, DatasetError):
                            raise obj
                        doc = _parse_document(obj, file, lineno)
                        if doc.docid in seen:
                            f0, l0 = seen[doc.docid]
                            raise DatasetError(file, lineno, f"duplicate document id {doc.docid!r} (first at {f0}:{l0})")
                        seen[doc.docid] = (str(file), lineno)
                        count += 1
                    except DatasetError as e:
                        rejects.reject(e, raw)
                        self._bad.add((str(file), lineno))
        finally:
            rejects.close()
        if count == 0:
            raise DatasetError(self.path, None, "corpus holds no valid documents")
        self.count, self.rejected = count, rejects.count
        self.ids = set(seen)
        _VALIDATED[key] = (self.count, self.rejected, self._bad, self.ids)
        return self

    def __iter__(self) -> Iterator[Document]:
        if self.count is None:
            self.validate()
        for file in self.files:
            for lineno, _raw, obj in _jsonl_records(file):
                if (str(file), lineno) in self._bad:
                    continue
                yield _parse_document(obj, file, lineno)

    def fingerprint(self) -> str:
        """Content hash of the corpus files plus which lines were rejected."""
        h = hashlib.sha256()
        for file in self.files:
            with open(file, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        h.update(repr(sorted(self._bad)).encode())
        return h.hexdigest()[:16]


def read_queries(path: str | Path, rejects: str | Path | None = None) -> dict[str, str]:
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, None, "file not found")
    sink = Rejects(rejects)
    queries: dict[str, str] = {}
    try:
        for lineno, raw, obj in _jsonl_records(path):
            try:
                if isinstance(obj, DatasetError):
                    raise obj
                qid = _check_id(obj.get("_id", obj.get("id")), path, lineno, "_id")
                if qid in queries:
                    raise DatasetError(path, lineno, f"duplicate query id {qid!r}")
                queries[qid] = _check_text(obj, "text" if "text" in obj else "contents", path, lineno)
            except DatasetError as e:
                sink.reject(e, raw)
    finally:
        sink.close()
    if not queries:
        raise DatasetError(path, None, "no valid queries")
    return queries


def read_qrels(path: str | Path, doc_ids: set[str] | None = None, query_ids=None) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (`query-id corpus-id score`, header); also accepts TREC qrels (`qid 0 docid rel`)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in text_lines(path):
        cols = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and cols[0].lower() in ("query-id", "query_id", "qid"):
            continue
        if len(cols) == 4:  # TREC qrels: qid iter docid rel
            cols = [cols[0], cols[2], cols[3]]
        if len(cols) != 3:
            raise DatasetError(path, lineno, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}")
        qid, docid, score = cols
        try:
            rel = int(float(score))
        except ValueError:
            raise DatasetError(path, lineno, f"score {score!r} is not a number") from None
        except OverflowError:
            raise DatasetError(path, lineno, f"score {score!r} is not finite") from None
        if doc_ids is not None and docid not in doc_ids:
            raise DatasetError(path, lineno, f"corpus-id {docid!r} is not in the corpus")
        if query_ids is not None and qid not in query_ids:
            raise DatasetError(path, lineno, f"query-id {qid!r} is not in the queries file")
        qrels.setdefault(qid, {})[docid] = rel
    if not qrels:
        raise DatasetError(path, None, "no judgments")
    return qrels


@dataclass
class BeirDataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise DatasetError(self.root, None, "dataset folder not found")

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def corpus_path(self) -> Path:
        return self.root / "corpus.jsonl"

    @property
    def queries_path(self) -> Path:
        return self.root / "queries.jsonl"

    def qrels_path(self, split: str = "test") -> Path:
        return self.root / "qrels" / f"{split}.tsv"

    def require(self, split: str | None = None) -> BeirDataset:
        """Before any work is written: the files a run over `split` reads are all there."""
        for path in (self.corpus_path, self.queries_path, *([self.qrels_path(split)] if split else [])):
            if not path.is_file():
                raise DatasetError(path, None, "file not found")
        return self

    def corpus(self, rejects=None) -> Corpus:
        return Corpus(self.corpus_path, rejects).validate()

    def queries(self) -> dict[str, str]:
        return read_queries(self.queries_path)

    def qrels(self, split: str = "test", corpus: Corpus | None = None, queries: dict | None = None):
        return read_qrels(self.qrels_path(split), corpus.ids if corpus else None, queries.keys() if queries else None)


def sample_texts(corpus: Corpus, n: int, seed: int = 0) -> list[str]:
    """A reproducible sample of document texts (calibration sets)."""
    import random

    docs = [d.contents for d in corpus]
    rng = random.Random(seed)
    return rng.sample(docs, min(n, len(docs)))


def read_texts(path: str | Path) -> list[str]:
    """Calibration texts from a file: a corpus/queries JSONL, or plain text with one text per line."""
    path = Path(path)
    if path.suffix == ".jsonl":
        out = []
        for lineno, _raw, obj in _jsonl_records(path):
            if isinstance(obj, DatasetError):
                raise obj
            out.append(_parse_document(obj, path, lineno).contents if ("title" in obj or "contents" in obj)
                       else _check_text(obj, "text", path, lineno))
    else:
        try:
            out = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as e:
            raise DatasetError(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    if not out:
        raise DatasetError(path, None, "no texts in the file")
    return out
