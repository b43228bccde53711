"""Wanda, SparseGPT and quantisation on tiny models: their defining properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from effir.cli import main
from effir.compression.sparsity import (
    block_linears,
    collect_inputs,
    sparsegpt_prune,
    wanda_mask,
)
from effir.core.models import resolve
from effir.encoder.model import Encoder, load_model
from tests.conftest import WORDS

TEXTS = [" ".join(WORDS[i:i + 12]) for i in range(0, 20)]


def test_wanda_keeps_largest_score_per_row():
    torch.manual_seed(0)
    w, norms = torch.randn(6, 16), torch.rand(16) * 4
    pruned = wanda_mask(w, norms, 0.5)
    score = w.abs() * norms.sqrt()
    for r in range(6):
        assert int(pruned[r].sum()) == 8
        assert score[r][~pruned[r]].min() >= score[r][pruned[r]].max()
    nm = wanda_mask(w, norms, 0.5, nm=(2, 4))
    assert (nm.reshape(6, 4, 4).sum(-1) == 2).all()


def test_sparsegpt_reconstructs_better_than_magnitude():
    torch.manual_seed(0)
    x = torch.randn(512, 32) @ torch.randn(32, 32)  # correlated inputs: where reconstruction matters
    w = torch.randn(16, 32)
    h = x.T @ x
    sgpt = sparsegpt_prune(w, h, 0.5, block=8)
    mag = w.clone()
    mag[wanda_mask(w, torch.ones(32), 0.5)] = 0  # magnitude pruning, same per-row ratio
    err = lambda v: float(((x @ (w - v).T) ** 2).sum())  # noqa: E731
    assert (sgpt == 0).sum() == w.numel() // 2
    assert err(sgpt) < err(mag)
    nm = sparsegpt_prune(w, h, 0.5, nm=(2, 4), block=8)
    assert ((nm.reshape(16, 8, 4) == 0).sum(-1) == 2).all()


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_sparsity_cli_reaches_target_exactly(tmp_path, tiny_llama, method):
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS))
    r = CliRunner().invoke(main, ["compress", method, "-m", str(tiny_llama), "--out", str(tmp_path / "s"),
                                  "--texts", str(texts), "--ratio", "0.5"])
    assert r.exit_code == 0, r.output
    model, tok = load_model(resolve(str(tmp_path / "s")), device="cpu")
    lins = block_linears(model).values()
    assert sum(int((m.weight == 0).sum()) for m in lins) == sum(m.weight.numel() for m in lins) // 2
    assert json.loads((tmp_path / "s" / "effir.json").read_text())["sparsity"]["sparsity"] == 0.5


def test_collect_inputs_counts_real_tokens_only(tiny_bert):
    model, tok = load_model(resolve(str(tiny_bert)), device="cpu")
    texts = ["a b c", "a"]
    _, stats = collect_inputs(model, tok, texts, hessian=True)
    # by hand: each text alone (no padding), H = Σ xxᵀ over its tokens' inputs to the query projection
    seen = []
    hook = model.encoder.layer[0].attention.self.query.register_forward_pre_hook(lambda m, a: seen.append(a[0][0]))
    with torch.no_grad():
        for t in texts:
            model(**tok([t], return_tensors="pt"))
    hook.remove()
    x = torch.cat(seen)
    torch.testing.assert_close(stats["0.attention.self.query"], x.T @ x, atol=1e-4, rtol=1e-4)


def test_int8_quantize_folder(tmp_path, tiny_bert):
    r = CliRunner().invoke(main, ["compress", "quantize", "-m", str(tiny_bert), "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    q = Encoder(resolve(str(tmp_path / "q")), device="cpu")
    full = Encoder(resolve(str(tiny_bert)), device="cpu")
    assert "DynamicQuantizedLinear" in str(q.model)
    a, b = q.encode(TEXTS)[0], full.encode(TEXTS)[0]
    assert (a * b).sum(1).min() > 0.95  # close to the fp32 vectors, not equal
    from effir.compression.info import describe

    # int8 is smaller on disk, but it has as many parameters and does as many operations
    qd, fd = describe(q.model), describe(full.model)
    assert qd["model_bytes"] < fd["model_bytes"]
    assert (qd["params"], qd["flops_per_token"]) == (fd["params"], fd["flops_per_token"])


def _correlated(n=400, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g) * torch.linspace(0.1, 3, d)


def test_whitened_truncation_beats_plain_svd_on_activations():
    from effir.compression.lowrank import plain_svd, whitened_svd, whitening

    x, w = _correlated(), torch.randn(16, 24, generator=torch.Generator().manual_seed(1))
    s = whitening(x.T @ x)
    err = lambda a, b: float(torch.linalg.norm(x.double() @ (w.double() - a @ b).T))  # noqa: E731
    for rank in (2, 6, 10):
        assert err(*whitened_svd(w, s, rank)) < err(*plain_svd(w, rank))


def test_nested_with_k1_equal_k_is_one_stage():
    from effir.compression.lowrank import nested_decomposition, whitened_svd, whitening

    x, w = _correlated(), torch.randn(16, 24, generator=torch.Generator().manual_seed(2))
    a, b = nested_decomposition(w, x.T @ x, 8, k1_fraction=1.0)
    a1, b1 = whitened_svd(w, whitening(x.T @ x), 8)
    torch.testing.assert_close(a @ b, a1 @ b1)
    a2, b2 = nested_decomposition(w, x.T @ x, 8, k1_fraction=0.75)  # two stages: still rank 8
    assert a2.shape == (16, 8) and b2.shape == (8, 24)


def test_nsvd_folder_round_trip(tmp_path, tiny_llama):
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS))
    r = CliRunner().invoke(main, ["compress", "nsvd", "-m", str(tiny_llama), "--out", str(tmp_path / "n"),
                                  "--texts", str(texts), "--keep", "0.4"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "n" / "effir.json").read_text())
    assert meta["low_rank"] and all(k > 0 for k in meta["low_rank"].values())
    enc = Encoder(resolve(str(tmp_path / "n")), device="cpu")
    full = Encoder(resolve(str(tiny_llama)), device="cpu")
    from effir.compression.info import describe

    assert describe(enc.model)["params_non_embedding"] < describe(full.model)["params_non_embedding"]
    assert enc.encode(TEXTS)[0].shape == full.encode(TEXTS)[0].shape


def test_outlier_ratios_find_a_massive_activation(tiny_llama):
    """A few tokens with huge inputs to one linear (as SmolLM2's MLP 11 has) stand out; the others stay small."""
    from effir.compression.quantize import outlier_ratios

    model, tok = load_model(resolve(str(tiny_llama)), device="cpu")
    first_token_huge = lambda mod, args: (torch.cat([args[0][:, :1] * 1000, args[0][:, 1:]], 1),)  # noqa: E731
    model.layers[1].mlp.down_proj.register_forward_pre_hook(first_token_huge)
    ratios = outlier_ratios(model, tok, TEXTS)
    assert max(ratios, key=ratios.get) == "1.mlp.down_proj" and ratios["1.mlp.down_proj"] > 100
    assert sorted(ratios.values())[-2] < 50


def test_int8_keeps_outlier_linears_in_fp32(tmp_path, tiny_llama):
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(TEXTS))
    args = ["compress", "quantize", "-m", str(tiny_llama), "--texts", str(texts), "--per-channel"]
    r = CliRunner().invoke(main, args + ["--keep-outliers", "1", "--out", str(tmp_path / "all-fp32")])
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "all-fp32" / "effir.json").read_text())["quantization_config"]
    every = block_linears(load_model(resolve(str(tiny_llama)), device="cpu")[0])
    assert config["per_channel"] and config["fp32_linears"] == sorted(every)  # every ratio is above 1
    full = Encoder(resolve(str(tiny_llama)), device="cpu").encode(TEXTS)[0]
    kept = Encoder(resolve(str(tmp_path / "all-fp32")), device="cpu")
    assert not any(m._get_name() == "DynamicQuantizedLinear" for m in kept.model.modules())
    np.testing.assert_allclose(kept.encode(TEXTS)[0], full, atol=1e-5)
    r = CliRunner().invoke(main, args + ["--keep-outliers", "1e9", "--out", str(tmp_path / "none-fp32")])
    assert r.exit_code == 0, r.output
    q = Encoder(resolve(str(tmp_path / "none-fp32")), device="cpu")
    assert json.loads((tmp_path / "none-fp32" / "effir.json").read_text())["quantization_config"]["fp32_linears"] == []
    assert sum(m._get_name() == "DynamicQuantizedLinear" for m in q.model.modules()) == len(every)
    r = CliRunner().invoke(main, ["compress", "quantize", "-m", str(tiny_llama), "--keep-outliers", "20", "--out",
                                  str(tmp_path / "never")])
    assert r.exit_code != 0 and "--dataset or --texts" in r.output and not (tmp_path / "never").exists()


def test_int8_token_is_w8a8_with_a_scale_per_token(tmp_path, tiny_llama):
    from effir.compression.info import describe
    from effir.compression.quantize import Int8TokenLinear

    torch.manual_seed(0)
    lin = torch.nn.Linear(24, 16)
    q = Int8TokenLinear(lin)
    x = torch.randn(2, 5, 24)
    x[0, 0] *= 1000  # one token with massive activations coarsens only its own row
    y = q(x)
    assert y.shape == (2, 5, 16)
    # by hand: per-token and per-channel symmetric int8, exact int32 products
    rows = x.reshape(-1, 24)
    sx = rows.abs().amax(1, keepdim=True) / 127
    sw = lin.weight.abs().amax(1) / 127
    wq = torch.round(lin.weight / sw[:, None])
    expected = (torch.round(rows / sx) @ wq.T) * sx * sw + lin.bias
    torch.testing.assert_close(y.reshape(-1, 16), expected, rtol=1e-4, atol=1e-4)
    rel = ((y - lin(x)).norm(dim=-1) / lin(x).norm(dim=-1)).detach()
    assert rel[0, 1:].max() < 0.02 and rel[1].max() < 0.02  # the other tokens keep int8 precision
    r = CliRunner().invoke(main, ["compress", "quantize", "-m", str(tiny_llama), "--method", "int8-token",
                                  "--out", str(tmp_path / "w8a8")])
    assert r.exit_code == 0, r.output
    enc, full = Encoder(resolve(str(tmp_path / "w8a8")), device="cpu"), Encoder(resolve(str(tiny_llama)), device="cpu")
    assert sum(isinstance(m, Int8TokenLinear) for m in enc.model.modules()) == len(block_linears(full.model))
    assert (enc.encode(TEXTS)[0] * full.encode(TEXTS)[0]).sum(1).min() > 0.99
    qd, fd = describe(enc.model), describe(full.model)
    assert (qd["params"], qd["flops_per_token"]) == (fd["params"], fd["flops_per_token"])
    assert qd["model_bytes"] < fd["model_bytes"]


def test_bf16_folder_runs_in_bfloat16_and_returns_float32(tmp_path, tiny_llama):
    from effir.compression.info import describe

    r = CliRunner().invoke(main, ["compress", "quantize", "-m", str(tiny_llama), "--method", "bf16",
                                  "--out", str(tmp_path / "bf16")])
    assert r.exit_code == 0, r.output
    enc, full = Encoder(resolve(str(tmp_path / "bf16")), device="cpu"), Encoder(resolve(str(tiny_llama)), device="cpu")
    assert {p.dtype for p in enc.model.parameters()} == {torch.bfloat16}
    vectors = enc.encode(TEXTS)[0]
    assert vectors.dtype == np.float32 and (vectors * full.encode(TEXTS)[0]).sum(1).min() > 0.99
    qd, fd = describe(enc.model), describe(full.model)
    assert (qd["params"], qd["flops_per_token"]) == (fd["params"], fd["flops_per_token"])
    assert qd["model_bytes"] < 0.6 * fd["model_bytes"]
    assert json.loads((tmp_path / "bf16" / "effir.json").read_text())["quantization"] == "bf16"
