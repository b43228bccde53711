"""Training examples for retrieval fine-tuning: (query, positive, hard negatives).

Sources: a qrels split (never `test`), label-free title → body pairs from a corpus, both with hard negatives
mined by the project's BM25, or by a trained retriever's dense ranking (`dense_hits`): top-ranked documents that
are not positives.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from effir.core.data import BeirDataset, Corpus
from effir.core.errors import EffirError

logger = logging.getLogger(__name__)

NEGATIVES_DEPTH = 30  # hard negatives are drawn from each query's top this many hits that are not positives


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


def dense_hits(model: str, corpus: Corpus, queries: dict[str, str], k: int, cache: Path,
               passage_max_length: int | None = None, device: str = "cpu") -> dict[str, list[tuple[str, float]]]:
    """Each query's top `k` documents by `model`'s exact inner product over the whole corpus: hard negatives as a
    trained retriever ranks them (ANCE's idea) rather than as BM25 does. Documents are encoded as training sees
    them (`passage_max_length`) into embedding shards under `cache`, one folder per model, corpus and length: the
    encode resumes after its last complete shard, and another source over the same corpus reuses it."""
    import faiss
    from tqdm import tqdm

    from effir.core.models import resolve
    from effir.encoder.model import Encoder, model_fingerprint
    from effir.encoder.shards import encode_corpus, load_all

    spec = resolve(model, passage_max_length=passage_max_length)  # None keeps the model's
    encoder = Encoder(spec, device=device, dtype="float32")
    fingerprint = model_fingerprint(spec)
    shards = cache / f"{fingerprint}-{corpus.fingerprint()}-{spec.passage_max_length}"
    logger.info("hard negatives by %s: corpus vectors in %s", spec.name, shards)
    encode_corpus(encoder, corpus, shards, shard_size=512, model_fingerprint=fingerprint)
    docids, vectors = load_all(shards)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    qids = list(queries)
    with tqdm(total=len(qids), desc="negatives: queries", unit="query") as bar:
        qvecs, _ = encoder.encode([queries[q] for q in qids], side="query", progress=bar)
    scores, rows = index.search(qvecs, min(k, len(docids)))
    return {q: [(docids[j], float(x)) for x, j in zip(s, r) if j >= 0] for q, s, r in zip(qids, scores, rows)}


def bm25_hits(corpus: Corpus, queries: dict[str, str], k: int, work: Path) -> dict[str, list[tuple[str, float]]]:
    """Each query's top `k` documents by the project's BM25 (a Lucene index of the corpus under `work`)."""
    from effir.search.bm25 import bm25_search, build_lucene_index

    return bm25_search(build_lucene_index(corpus, work / "bm25"), queries, k=k)


def build_examples(items: list[tuple[str, str, set]], corpus: Corpus, work: Path,
                   negatives_depth: int = NEGATIVES_DEPTH,
                   title_body: bool = False, source: str = "", mine=None) -> list[Example]:
    """Attach positives' texts and hard negatives: the top `negatives_depth` hits minus positives, by `mine`
    (corpus, {qid: query}, k → {qid: [(docid, score)]}; BM25 over `work` unless given)."""
    texts = {d.docid: (d.text if title_body else d.contents) for d in corpus}
    hits = {}
    if negatives_depth:  # no index (nor JVM, nor encoder) when no negatives are asked for
        queries = {qid: q for qid, q, _ in items}
        hits = mine(corpus, queries, negatives_depth) if mine else bm25_hits(corpus, queries, negatives_depth, work)
    out = []
    for qid, query, positives in items:
        negs = [texts[d] for d, _ in hits.get(qid, []) if d not in positives]
        for pos in sorted(positives):
            out.append(Example(query, texts[pos], negs, source))
    return out
