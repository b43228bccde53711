"""Contextual sparsity (ShadowLLM) on tiny models: gathered computation is the masked computation, end to end."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from effir.cli import main
from effir.compression import shadow, shadow_targets
from effir.compression.info import flops_per_token
from effir.core.models import resolve
from effir.encoder import architecture
from effir.encoder.model import Encoder, load_model, pad_batch
from tests.conftest import WORDS

TEXTS = [" ".join(WORDS[i:i + 3 + 2 * i]) for i in range(8)]  # different lengths: padding is exercised


def _batch(tok, device="cpu"):
    ids = tok(TEXTS, truncation=True, max_length=48)["input_ids"]
    return pad_batch(ids, tok.pad_token_id, device)


def _masked_reference(model, kept: dict, head_dim: int):
    """The dense model with the unkept heads' outputs and channels multiplied by zero."""
    hooks = []
    for (layer, kind), idx in kept.items():
        block = architecture.layers(model)[layer]
        if kind == "mlp":
            target, width = architecture.mlp_linears(block)[1], architecture.mlp_width(block)
            cols = idx
        else:
            target = block.self_attn.o_proj if hasattr(block, "self_attn") else block.attention.output.dense
            width, cols = target.in_features, shadow.head_rows(idx, head_dim)
        mask = torch.zeros(idx.size(0), 1, width).scatter_(2, cols.unsqueeze(1), 1.0)
        hooks.append(target.register_forward_pre_hook(lambda mod, args, m=mask: (args[0] * m,)))
    return hooks


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_llama"])
def test_gathered_equals_masked(fixture, request):
    folder = request.getfixturevalue(fixture)
    spec = resolve(str(folder))
    sparse, tok = load_model(spec, device="cpu")
    dense, _ = load_model(spec, device="cpu")
    torch.manual_seed(1)
    predictor = shadow.ShadowPredictor(sparse.config.hidden_size, shadow.predictor_layout(sparse), width=16)
    selection = shadow.attach(sparse, predictor.eval(), head_keep=0.5, mlp_keep=0.4)
    input_ids, mask = _batch(tok)
    with torch.no_grad():
        got = sparse(input_ids=input_ids, attention_mask=mask).last_hidden_state
        kept = {key: idx for key, idx in selection.kept.items() if key[1] in ("heads", "mlp")}
        assert {k: v.size(1) for k, v in kept.items()} == {
            (layer, kind): shadow.keep_count(n, 0.5 if kind == "heads" else 0.4) for layer, kind, n in predictor.layout}
        assert len({tuple(r.tolist()) for r in kept[(1, "mlp")]}) > 1  # inputs really choose differently
        hooks = _masked_reference(dense, kept, shadow.attention_head_dim(dense))
        want = dense(input_ids=input_ids, attention_mask=mask).last_hidden_state
        for h in hooks:
            h.remove()
        full = dense(input_ids=input_ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(got[real], want[real], atol=1e-5)
    assert not torch.allclose(got[real], full[real], atol=1e-3)  # the sparsity did something
    assert flops_per_token(sparse) < flops_per_token(dense)


def test_spearman_and_normalise():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    assert shadow_targets.spearman(a, a).tolist() == pytest.approx([1.0, 1.0])
    assert shadow_targets.spearman(a, a.flip(-1)).tolist() == pytest.approx([-1.0, -1.0])
    z = shadow_targets.normalise(torch.rand(3, 50) * 100)
    assert z.mean(-1).abs().max() < 1e-5 and (z.std(-1) - 1).abs().max() < 1e-4


def test_shadow_folder_trains_loads_and_is_reused(tmp_path, tiny_bert, tiny_dataset):
    out = tmp_path / "s75"
    r = CliRunner().invoke(main, ["compress", "shadow", "-m", str(tiny_bert), "--dataset", str(tiny_dataset),
                                  "--pairs", 40, "--epochs", 20, "--width", 32, "--out", str(out)])
    assert r.exit_code == 0, r.output
    settings = json.loads((out / "effir.json").read_text())["shadow"]
    dense, _ = load_model(resolve(str(tiny_bert)), device="cpu")
    assert settings["pairs"] == 40 and settings["layout"] == [list(x) for x in shadow.predictor_layout(dense)]
    enc = Encoder(resolve(str(out)), device="cpu")
    saved = load_file(str(out / shadow.SHADOW_WEIGHTS))
    loaded = enc.model.shadow.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    vecs, _ = enc.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 32) and abs(float((vecs ** 2).sum(1).mean()) - 1) < 1e-4
    # a second level reuses the trained predictor: no calibration, another keep fraction
    r = CliRunner().invoke(main, ["compress", "shadow", "-m", str(tiny_bert), "--dataset", str(tiny_dataset),
                                  "--predictor-from", str(out), "--mlp-keep", 0.25, "--out", str(tmp_path / "s25")])
    assert r.exit_code == 0, r.output
    lighter = Encoder(resolve(str(tmp_path / "s25")), device="cpu")
    assert flops_per_token(lighter.model) < flops_per_token(enc.model)
    # reused, not retrained: the same predictor bytes
    assert (tmp_path / "s25" / shadow.SHADOW_WEIGHTS).read_bytes() == (out / shadow.SHADOW_WEIGHTS).read_bytes()
    r = CliRunner().invoke(main, ["compress", "info", str(tmp_path / "s25"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["flops_per_token"] == flops_per_token(lighter.model)


def test_each_input_runs_its_own_predicted_units(tiny_llama):
    """The units a layer computes are the predictor's top-k for that input's pooled layer-0 output."""
    model, tok = load_model(resolve(str(tiny_llama)), device="cpu")
    predictor = shadow.ShadowPredictor(model.config.hidden_size, shadow.predictor_layout(model), width=16)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in predictor.parameters():
            p.normal_()
    layer0 = {}
    model.layers[0].register_forward_hook(lambda m, a, out: layer0.update(h=out[0] if isinstance(out, tuple) else out))
    selection = shadow.attach(model, predictor.eval(), head_keep=0.5, mlp_keep=0.25)
    input_ids, mask = _batch(tok)
    with torch.no_grad():
        model(input_ids=input_ids, attention_mask=mask)
        expected = predictor.split(predictor(shadow.masked_mean(layer0["h"], mask)))
    for (layer, kind, n) in predictor.layout:
        k = shadow.keep_count(n, 0.5 if kind == "heads" else 0.25)
        want = expected[(layer, kind)].topk(k, dim=-1).indices.sort(dim=-1).values
        assert torch.equal(selection(layer, kind), want)
    assert any(not torch.equal(idx[0], idx[1]) for key, idx in selection.kept.items() if key[1] == "mlp")


def test_shadow_refuses_quantised_and_low_rank(tmp_path, tiny_bert):
    model, _ = load_model(resolve(str(tiny_bert)), device="cpu")
    architecture.factor_linear(model, "encoder.layer.1.intermediate.dense", 4)
    with pytest.raises(ValueError, match="low-rank"):
        shadow.attach(model, shadow.ShadowPredictor(32, shadow.predictor_layout(model), 8), 0.5, 0.5)
