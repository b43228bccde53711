"""Training examples for retrieval fine-tuning: (query, positive, hard negatives).

Sources: a qrels split (never `test`), label-free title → body pairs from a corpus, both with hard negatives
mined by the project's BM25 (top-ranked documents that are not positives).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from effir.core.data import BeirDataset, Corpus
from effir.core.errors import EffirError


@dataclass
class Example:
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    source: str = ""  # where the pair came from ("scifact train qrels"): what a trained model's history names


def qrels_examples(dataset: BeirDataset, split: str) -> tuple[list[tuple[str, str, set]], Corpus]:
    """[(query id, query text, positive doc ids)] from qrels/<split>.tsv."""
    if split == "test":
        raise EffirError("--split test: training on the test split is not allowed; it is what the model is evaluated on")
    corpus = dataset.corpus()
    queries = dataset.queries()
    qrels = dataset.qrels(split, corpus, queries)
    return [(q, queries[q], {d for d, r in rel.items() if r > 0}) for q, rel in qrels.items()], corpus


def title_body_examples(corpus: Corpus, limit: int | None, seed: int = 0) -> list[tuple[str, str, set]]:
    """Label-free pairs: a document's title is the query, its body the positive."""
    docs = [d for d in corpus if d.title.strip() and d.text.strip()]
    random.Random(seed).shuffle(docs)
    return [(f"title:{d.docid}", d.title, {d.docid}) for d in docs[:limit]]


def text_pairs(dataset: BeirDataset, limit: int, split: str | None = None) -> list[tuple[str, str]]:
    """(query, positive) texts without negatives: the corpus's title → body pairs, plus a qrels split's pairs."""
    corpus = dataset.corpus()
    body = {d.docid: d.text for d in corpus}
    out = [(title, body[d]) for _, title, docs in title_body_examples(corpus, limit) for d in docs]
    if split:
        items, _ = qrels_examples(dataset, split)
        contents = {d.docid: d.contents for d in corpus}
        out += [(query, contents[d]) for _, query, docs in items for d in sorted(docs)]
    if not out:
        raise ValueError(f"{dataset.root}: no titled documents to pair with their bodies; give a qrels --split")
    return out


def build_examples(items: list[tuple[str, str, set]], corpus: Corpus, work: Path, negatives_depth: int = 30,
                   title_body: bool = False, source: str = "") -> list[Example]:
    """Attach positives' texts and BM25 hard negatives (the top `negatives_depth` hits minus positives)."""
    from effir.search.bm25 import bm25_search, build_lucene_index

    texts = {d.docid: (d.text if title_body else d.contents) for d in corpus}
    hits = {}
    if negatives_depth:  # no Lucene index (nor JVM) when no negatives are asked for
        index = build_lucene_index(corpus, work / "bm25")
        hits = bm25_search(index, {qid: q for qid, q, _ in items}, k=negatives_depth)
    out = []
    for qid, query, positives in items:
        negs = [texts[d] for d, _ in hits.get(qid, []) if d not in positives]
        for pos in sorted(positives):
            out.append(Example(query, texts[pos], negs, source))
    return out
