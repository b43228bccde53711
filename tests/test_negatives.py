"""Hard negatives mined by a model's dense ranking (`--negatives-by`) instead of BM25."""

import json

import numpy as np
from click.testing import CliRunner

from effir.cli import main
from effir.compression import pairs
from effir.compression.steps import training_examples
from effir.core.data import BeirDataset
from effir.core.models import resolve
from effir.encoder.model import Encoder


def test_dense_negatives_follow_the_models_ranking_without_positives(tiny_llama, tiny_dataset, tmp_path):
    examples = training_examples(str(tiny_dataset), "train", [], 0, tmp_path / "data",
                                 negatives_by=str(tiny_llama), passage_max_length=32)
    assert len(examples) == 8 and all(0 < len(e.negatives) <= 30 for e in examples)
    assert all(e.positive not in e.negatives for e in examples)
    assert {e.source for e in examples} == {f"tiny train qrels, negatives by {tiny_llama.name}"}, "what the history names"
    # the first query's negatives are its top documents by the model itself, in order, its positive left out
    ds = BeirDataset(tiny_dataset)
    docs = list(ds.corpus())
    encoder = Encoder(resolve(str(tiny_llama), passage_max_length=32), dtype="float32")
    doc_vectors, _ = encoder.encode([d.contents for d in docs], side="passage")
    query_vector, _ = encoder.encode([examples[0].query], side="query")
    ranked = [docs[i].contents for i in np.argsort(-(doc_vectors @ query_vector[0]), kind="stable")]
    expected = [text for text in ranked if text != examples[0].positive][:len(examples[0].negatives)]
    assert examples[0].negatives[:5] == expected[:5]


def test_dense_negatives_encode_the_corpus_once(tiny_llama, tiny_dataset, tmp_path, monkeypatch):
    corpus = BeirDataset(tiny_dataset).corpus()
    queries = {"a": "alpha beta", "b": "gamma"}
    first = pairs.dense_hits(str(tiny_llama), corpus, queries, 5, tmp_path / "cache", passage_max_length=32)
    assert [m.parent for m in tmp_path.glob("cache/*/manifest.json")], "the corpus vectors are kept as shards"
    sides = []
    real = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts, side="passage", progress=None:
                        sides.append(side) or real(self, texts, side, progress))
    again = pairs.dense_hits(str(tiny_llama), corpus, queries, 5, tmp_path / "cache", passage_max_length=32)
    assert sides == ["query"], "a second source over the same corpus encodes only its queries"
    assert [[d for d, _ in first[q]] for q in queries] == [[d for d, _ in again[q]] for q in queries]
    assert all(len(hits) == 5 for hits in first.values())


def test_train_with_dense_negatives_records_the_miner_and_refuses_a_missing_one(tiny_llama, tiny_dataset, tmp_path):
    common = ["compress", "train", "-m", str(tiny_llama), "--dataset", str(tiny_dataset), "--lora", "--lora-r", "4",
              "--batch-size", "4", "--max-steps", "1", "--passage-max-length", "32"]
    r = CliRunner().invoke(main, common + ["--negatives-by", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "nowhere" in r.output
    assert not (tmp_path / "x").exists(), "nothing written when the miner cannot be read"
    r = CliRunner().invoke(main, common + ["--negatives-by", str(tiny_llama), "--out", str(tmp_path / "ft")])
    assert r.exit_code == 0, r.output
    history = json.loads((tmp_path / "ft" / "effir.json").read_text())["history"]
    assert history[-1]["data"] == {f"tiny train qrels, negatives by {tiny_llama.name}": 8}
