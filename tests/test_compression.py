"""EffiR steps on tiny random models: importance, exact-identity drop, exact slimming fold, training, info."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from click.testing import CliRunner

from effir.cli import main
from effir.compression.folder import save_model_folder
from effir.compression.importance import least_important, sublayer_importance
from effir.compression.info import describe
from effir.compression.slim import ChannelGates
from effir.core.models import resolve
from effir.encoder import architecture
from effir.encoder.model import Encoder, load_model
from tests.conftest import LUCENE

TEXTS = ["protein binding in cells", "a trial of therapy dose and risk " * 3, "brain signal", "memory"]


def _ids(tok, texts=TEXTS):
    batch = tok(texts, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def _hidden(model, tok):
    ids, mask = _ids(tok)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_importance_scores_every_sublayer(request, fixture):
    model, tok = load_model(resolve(str(request.getfixturevalue(fixture))), device="cpu")
    scores = sublayer_importance(model, tok, TEXTS * 3, max_length=32, batch_size=4)
    n = len(architecture.layers(model))
    assert len(scores["attn"]) == n and len(scores["mlp"]) == n
    assert scores["tokens"] > 0 and all(s > 0 for s in scores["attn"] + scores["mlp"])
    assert least_important([0.3, 0.1, None, 0.2], 2) == [1, 3]
    # a sublayer whose output is zero changes nothing: S = 0 exactly; a larger output moves the stream more
    _, out_proj = architecture.mlp_linears(architecture.layers(model)[1])
    with torch.no_grad():
        weight = out_proj.weight.clone()
        out_proj.weight.zero_()
        if out_proj.bias is not None:
            out_proj.bias.zero_()
        silent = sublayer_importance(model, tok, TEXTS * 3, max_length=32, batch_size=4)
        out_proj.weight.copy_(weight * 10)
        loud = sublayer_importance(model, tok, TEXTS * 3, max_length=32, batch_size=4)
    assert silent["mlp"][1] == pytest.approx(0.0, abs=1e-6) and silent["mlp"][0] == scores["mlp"][0]
    assert loud["mlp"][1] > scores["mlp"][1]
    assert silent["mlp_channels"][1] == [0.0] * len(silent["mlp_channels"][1])


def test_importance_matches_definition_on_llama(tiny_llama):
    """S_mlp of layer 0 by hand: 1 − cos(h, h + MLP(norm(h))) averaged over real tokens."""
    model, tok = load_model(resolve(str(tiny_llama)), device="cpu")
    texts = ["protein binding in cells", "brain"]
    scores = sublayer_importance(model, tok, texts, max_length=32, batch_size=2)
    ids = tok(texts, truncation=True, max_length=32)["input_ids"]
    from effir.encoder.model import pad_batch

    input_ids, mask = pad_batch(ids, tok.pad_token_id, "cpu")
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        x1 = out.hidden_states[1]  # stream leaving layer 0 = entering layer 1
        layer = model.layers[1]
        # reproduce layer 1: attention then MLP
        captured = {}
        h = layer.post_attention_layernorm.register_forward_pre_hook(lambda m, a: captured.update(h=a[0]))
        model(input_ids=input_ids, attention_mask=mask)
        h.remove()
        hmid = captured["h"]
        y = hmid + layer.mlp(layer.post_attention_layernorm(hmid))
        cos_attn = torch.nn.functional.cosine_similarity(x1, hmid, dim=-1)
        cos_mlp = torch.nn.functional.cosine_similarity(hmid, y, dim=-1)
        m = mask.float()
        assert scores["mlp"][1] == pytest.approx(float(((1 - cos_mlp) * m).sum() / m.sum()), abs=1e-5)
        assert scores["attn"][1] == pytest.approx(float(((1 - cos_attn) * m).sum() / m.sum()), abs=1e-5)


def test_dropped_mlp_is_exact_identity_llama(tiny_llama):
    """Model with the MLP removed == model whose MLP returns zero."""
    spec = resolve(str(tiny_llama))
    zeroed, tok = load_model(spec, device="cpu")
    zeroed.layers[1].mlp.forward = lambda x: torch.zeros_like(x)
    dropped, _ = load_model(spec, device="cpu")
    architecture.drop_mlp(dropped, 1)
    assert torch.equal(_hidden(zeroed, tok), _hidden(dropped, tok))
    assert not any(".1.mlp." in n or "layers.1.post_attention" in n for n, _ in dropped.named_parameters())


def test_dropped_mlp_is_exact_identity_bert(tiny_bert):
    """Post-norm: the layer returns its attention output unchanged."""
    spec = resolve(str(tiny_bert))
    model, tok = load_model(spec, device="cpu")
    architecture.drop_mlp(model, 2)
    captured = {}
    model.encoder.layer[2].attention.register_forward_hook(lambda m, a, o: captured.update(h=o[0]))
    assert torch.equal(_hidden(model, tok), captured["h"])
    assert not any("layer.2.intermediate" in n or "layer.2.output" in n for n, _ in model.named_parameters())


def test_dropped_attention_is_exact_identity(tiny_llama):
    spec = resolve(str(tiny_llama))
    zeroed, tok = load_model(spec, device="cpu")
    zeroed.layers[2].self_attn.forward = lambda hidden_states, **kw: (torch.zeros_like(hidden_states), None)
    dropped, _ = load_model(spec, device="cpu")
    architecture.drop_attention(dropped, 2)
    assert torch.equal(_hidden(zeroed, tok), _hidden(dropped, tok))


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_compressed_folder_round_trip(request, tmp_path, fixture):
    """drop + slice, save, load through the encoder's loader: same vectors, fewer parameters."""
    spec = resolve(str(request.getfixturevalue(fixture)))
    model, tok = load_model(spec, device="cpu")
    before = describe(model)
    architecture.drop_mlp(model, 0)
    architecture.keep_mlp_channels(model, 1, torch.arange(0, 64, 2), scale=torch.rand(64))
    saved = save_model_folder(model, tok, spec, tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "effir.json").read_text())
    assert meta["dropped_mlp"] == [0] and meta["mlp_widths"]["1"] == 32
    reloaded = Encoder(resolve(saved.path), device="cpu")
    assert describe(reloaded.model)["params"] < before["params"]
    live = Encoder(spec, device="cpu", model=model, tokenizer=tok)
    torch.testing.assert_close(torch.tensor(reloaded.encode(TEXTS)[0]), torch.tensor(live.encode(TEXTS)[0]))


def test_llm_drop_config_convention_loads(tmp_path, tiny_llama):
    """A folder with drop_mlp_list in config.json (released EffiR / LLM-Drop) loads without remote code."""
    spec = resolve(str(tiny_llama))
    model, tok = load_model(spec, device="cpu")
    architecture.drop_mlp(model, 3)
    model.save_pretrained(tmp_path / "ext")
    tok.save_pretrained(tmp_path / "ext")
    cfg = json.loads((tmp_path / "ext" / "config.json").read_text())
    cfg["drop_mlp_list"] = [3]
    (tmp_path / "ext" / "config.json").write_text(json.dumps(cfg))
    ext = resolve(str(tmp_path / "ext"))
    assert ext.dropped_mlp == [3] and ext.pooling == "last"
    loaded, _ = load_model(ext, device="cpu")
    assert torch.equal(_hidden(loaded, tok), _hidden(model, tok))


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_slim_fold_is_exact(request, fixture):
    """Masked model (gates ReLU(z) on every channel) == sliced model with ReLU(z) folded into W_down."""
    model, tok = load_model(resolve(str(request.getfixturevalue(fixture))), device="cpu")
    gates = ChannelGates(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for z in gates.parameters():
            z.copy_(torch.randn_like(z))  # about half ≤ 0: those channels are off in the masked model too
    keep = sum(int((z > 0).sum()) for z in gates.parameters()) / sum(z.numel() for z in gates.parameters())
    z = {i: g.detach().clone() for i, g in gates.z.items()}
    masked = _hidden(model, tok)
    channels = gates.fold(keep_fraction=keep)
    sliced = _hidden(model, tok)
    torch.testing.assert_close(sliced, masked, atol=1e-5, rtol=1e-5)
    for i, (idx, scale) in channels.items():
        ins, out = architecture.mlp_linears(architecture.layers(model)[i])
        w = len(idx)
        assert out.weight.shape[1] == w and all(lin.weight.shape[0] == w for lin in ins)
        assert torch.equal(idx, torch.nonzero(z[i] > 0).flatten())  # exactly the open gates, in order
        torch.testing.assert_close(scale, z[i][idx])


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_width_padding_is_exact(request, tmp_path, fixture):
    """Ragged MLP widths are zero-padded to a multiple of 8 when a model is loaded to encode: the same outputs,
    while the folder, training and further cuts keep the widths the cut recorded."""
    model, tok = load_model(resolve(str(request.getfixturevalue(fixture))), device="cpu")
    for i, width in ((0, 45), (1, 61)):
        architecture.keep_mlp_channels(model, i, torch.randperm(64)[:width].sort().values)
    architecture.drop_mlp(model, 2)
    spec = save_model_folder(model, tok, resolve(str(request.getfixturevalue(fixture))), tmp_path / "cut")
    unpadded, _ = load_model(spec, device="cpu")
    encoder = Encoder(spec, device="cpu")
    widths = [None if architecture.mlp_is_dropped(layer) else architecture.mlp_width(layer)
              for layer in architecture.layers(encoder.model)]
    assert widths[:3] == [48, 64, None] and all(w is None or w % architecture.WIDTH_MULTIPLE == 0 for w in widths)
    assert [architecture.mlp_width(layer) for layer in architecture.layers(unpadded)[:2]] == [45, 61]
    torch.testing.assert_close(_hidden(encoder.model, tok), _hidden(unpadded, tok), atol=1e-6, rtol=1e-6)
    assert architecture.align_mlp_widths(encoder.model) == {}  # already aligned: nothing to do


def test_width_padding_leaves_factored_mlps_alone(tiny_llama):
    model, _ = load_model(resolve(str(tiny_llama)), device="cpu")
    architecture.keep_mlp_channels(model, 0, torch.arange(45))
    architecture.factor_linear(model, "layers.0.mlp.down_proj", 4)
    assert architecture.align_mlp_widths(model) == {}
    assert architecture.mlp_width(architecture.layers(model)[0]) == 45


def test_slim_cuts_requested_fraction(tiny_llama):
    model, _ = load_model(resolve(str(tiny_llama)), device="cpu")
    gates = ChannelGates(model)
    with torch.no_grad():
        for z in gates.parameters():
            z.copy_(torch.rand_like(z) + 0.1)
    channels = gates.fold(keep_fraction=0.7)
    assert sum(len(idx) for idx, _ in channels.values()) == round(0.7 * 4 * 64)


def test_slim_by_activation_keeps_what_adds_to_the_output(tmp_path, tiny_llama, tiny_dataset):
    from effir.compression.slim import activation_keep_sets, load_channels

    model, tok = load_model(resolve(str(tiny_llama)), device="cpu")
    _, down = architecture.mlp_linears(architecture.layers(model)[1])
    with torch.no_grad():
        down.weight[:, :5] = 0  # five channels that add nothing, whatever their activations
    architecture.apply_structure(model, dropped_mlp=[2])
    keep = activation_keep_sets(sublayer_importance(model, tok, TEXTS, max_length=32)["mlp_channels"], 0.5)
    assert {i: len(k) for i, k in keep.items()} == {0: 32, 1: 32, 3: 32}  # the same fraction in every kept MLP
    assert not set(range(5)) & set(keep[1].tolist())
    r = CliRunner().invoke(main, ["compress", "slim", "-m", str(tiny_llama), "--slim-by", "activation", "--dataset",
                                  str(tiny_dataset), "--reduction", "0.25", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    spec = resolve(str(tmp_path / "s"))
    assert spec.mlp_widths == {i: 48 for i in range(4)} and spec.extra["history"][-1]["by"] == "activation"
    channels = load_channels(tmp_path / "s" / "channels.safetensors")
    assert all(torch.equal(scale, torch.ones(48)) for _, scale in channels.values())  # nothing folded
    assert Encoder(spec, device="cpu").encode(TEXTS)[0].shape == (len(TEXTS), 32)


def test_gate_activation_cut_measures_each_channel_through_its_gate(tmp_path, tiny_llama, tiny_dataset):
    """With the gates hooked in, a_c is ReLU(z_c) times the ungated a_c, so a closed gate's channel is never kept;
    `--slim-by gate-activation` trains the gates, then cuts the same share of every layer by that norm."""
    from effir.compression.slim import activation_keep_sets

    model, tok = load_model(resolve(str(tiny_llama)), device="cpu")
    ungated = sublayer_importance(model, tok, TEXTS, max_length=32)["mlp_channels"]
    gates = ChannelGates(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for z in gates.parameters():
            z.copy_(torch.rand_like(z) * 2)
        gates.z[1][:5] = -1.0  # five closed channels, whatever they would write
    gated = sublayer_importance(model, tok, TEXTS, max_length=32)["mlp_channels"]
    # the first MLP reads the same input either way (later ones read what the gates before them changed)
    torch.testing.assert_close(torch.tensor(gated[0]), torch.relu(gates.z[0].detach()) * torch.tensor(ungated[0]),
                               rtol=1e-3, atol=1e-6)  # a_c is stored to 4 significant digits
    assert gated[1][:5] == [0.0] * 5 and min(ungated[1][:5]) > 0
    assert not set(range(5)) & set(activation_keep_sets(gated, 0.5)[1].tolist())
    r = CliRunner().invoke(main, ["compress", "slim", "-m", str(tiny_llama), "--slim-by", "gate-activation",
                                  "--dataset", str(tiny_dataset), "--split", "train", "--max-steps", "2",
                                  "--batch-size", "4", "--reduction", "0.25", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    spec = resolve(str(tmp_path / "s"))
    assert spec.mlp_widths == {i: 48 for i in range(4)} and spec.extra["history"][-1]["by"] == "gate-activation"


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_greedy_drift_is_what_the_cut_does(request, fixture):
    """D(S) along the greedy order equals the drift of the real cut (`apply_structure` on a fresh model); the first
    step takes the least drop-one drift; the measured model is left intact; plans follow the order."""
    from effir.compression.importance import greedy_mlp_drift, mlp_costs, mlp_ranking, mlp_to_drop
    from effir.encoder.model import pad_batch, tokenize

    spec = resolve(str(request.getfixturevalue(fixture)))
    model, tok = load_model(spec, device="cpu")
    ids, mask = pad_batch(tokenize(tok, spec, TEXTS, "passage", 32), tok.pad_token_id, "cpu")
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    drop_one = greedy_mlp_drift(model, tok, TEXTS, steps=0, max_length=32, spec=spec)
    greedy = greedy_mlp_drift(model, tok, TEXTS, steps=2, max_length=32, spec=spec)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).last_hidden_state, before)
    n = len(architecture.layers(model))
    assert len(drop_one["next"]) == n and len(greedy["next"]) == n - 2
    assert greedy["order"][0] == int(min(drop_one["next"], key=drop_one["next"].get))
    assert greedy["drift"][0] == min(drop_one["next"].values())

    cut, _ = load_model(spec, device="cpu")
    architecture.apply_structure(cut, dropped_mlp=greedy["order"])
    with torch.no_grad():
        after = cut(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.float()
    by_hand = float(((1 - torch.nn.functional.cosine_similarity(after, before, dim=-1)) * m).sum() / m.sum())
    assert greedy["drift"][1] == pytest.approx(by_hand, abs=2e-6)

    scores = json.loads(json.dumps({"mlp": [0.1] * n, "mlp_drift": greedy}))  # as read back from importance.json
    assert mlp_ranking(scores)[:2] == greedy["order"] and sorted(mlp_ranking(scores)) == list(range(n))
    assert mlp_to_drop(scores, 2) == sorted(greedy["order"])
    assert sum(mlp_costs(scores)[i] for i in greedy["order"]) == pytest.approx(greedy["drift"][1])


@LUCENE
def test_analyze_drift_cli_drives_drop(tmp_path, tiny_llama, tiny_dataset):
    r = CliRunner().invoke(main, ["compress", "analyze", "-m", str(tiny_llama), "--dataset", str(tiny_dataset),
                                  "--calibration", "8", "--drift-steps", "1", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    greedy = json.loads((tmp_path / "a" / "importance.json").read_text())["mlp_drift"]
    assert f"MLP {greedy['order'][0]}" in r.output and greedy["texts"] == 8
    r = CliRunner().invoke(main, ["compress", "drop", "-m", str(tiny_llama), "--mlp", "1", "--importance",
                                  str(tmp_path / "a" / "importance.json"), "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "d" / "effir.json").read_text())["dropped_mlp"] == greedy["order"]


def test_drop_cli_and_info(tmp_path, tiny_llama):
    r = CliRunner().invoke(main, ["compress", "drop", "-m", str(tiny_llama), "--out", str(tmp_path / "d"),
                                  "--mlp-layers", "0,2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["compress", "info", str(tmp_path / "d"), "--json"])
    info = json.loads(r.stdout)
    assert info["dropped_mlp"] == [0, 2] and set(info["mlp_widths"]) == {"1", "3"}


def test_train_reduces_loss_and_resumes(tmp_path, tiny_bert):
    from effir.compression.pairs import Example
    from effir.compression.train import TrainConfig, train

    spec = resolve(str(tiny_bert))
    model, tok = load_model(spec, device="cpu")
    examples = [Example(f"topic {w}", f"a passage about {w} {w}", [f"unrelated {v}" for v in "xyz"])
                for w in ["protein", "brain", "heart", "virus", "tissue", "dose", "risk", "lung"]]
    cfg = TrainConfig(epochs=20, batch_size=4, lr=1e-3, checkpoint_every=5)
    model, history = train(model, tok, spec, examples, cfg, tmp_path / "w")
    assert history[-1]["info_nce"] < history[0]["info_nce"]
    assert (tmp_path / "w" / "checkpoint.pt").exists()
    # a rerun finds the finished checkpoint and trains no further steps
    model2, tok2 = load_model(spec, device="cpu")
    _, history2 = train(model2, tok2, spec, examples, cfg, tmp_path / "w")
    assert len(history2) == len(history)


def test_lora_training_merges(tmp_path, tiny_llama):
    from effir.compression.pairs import Example
    from effir.compression.train import TrainConfig, train

    spec = resolve(str(tiny_llama))
    model, tok = load_model(spec, device="cpu")
    examples = [Example(f"q {i}", f"passage {i}", []) for i in range(8)]
    model, _ = train(model, tok, spec, examples, TrainConfig(batch_size=4, lora=True, lora_r=4, lr=1e-3), tmp_path)
    assert type(model).__name__ == "LlamaModel"  # merged back, no peft wrapper
    assert not any("lora" in n for n, _ in model.named_parameters())


@LUCENE
def test_effir_recipe_end_to_end(tmp_path, tiny_llama, tiny_dataset):
    """analyze → plan → drop → slim → train on a tiny model; every folder loads in the encoder."""
    from effir.compression.slim import CHANNELS_FILE, load_channels
    from effir.compression.steps import effir_recipe
    from effir.compression.train import TrainConfig

    steps = effir_recipe(str(tiny_llama), str(tiny_dataset), tmp_path / "r", drop_fraction=0.5, reduction=0.3,
                         cfg=TrainConfig(batch_size=4, max_steps=2, lr=1e-3, lora=True, lora_r=4), calibration=8,
                         pooling="mean")
    final = json.loads((tmp_path / "r" / "3-final" / "effir.json").read_text())
    scores = json.loads((tmp_path / "r" / "0-analyze" / "importance.json").read_text())
    assert final["dropped_mlp"] == least_important(scores["mlp"], 2)
    assert sum(final["mlp_widths"].values()) == round(0.7 * 2 * 64)
    assert [h["step"] for h in final["history"]] == ["drop", "slim", "train"]
    assert final["history"][-1]["data"] == {f"{tiny_dataset.name} train qrels": final["history"][-1]["examples"]}
    # the kept channels travel with the trained folder, and the LoRA adapter is kept beside the merged weights
    channels = load_channels(tmp_path / "r" / "3-final" / CHANNELS_FILE)
    assert {i: len(idx) for i, (idx, _) in channels.items()} == {int(k): v for k, v in final["mlp_widths"].items()}
    assert (tmp_path / "r" / "3-final" / "adapter" / "adapter_config.json").exists()
    for path in steps.values():
        assert resolve(path).pooling == "mean"  # the override (tiny_llama pools its last token) reaches every step
        assert Encoder(resolve(path), device="cpu").encode(TEXTS)[0].shape == (len(TEXTS), 32)
    # resuming into the same folder with another importance (so another cut) is refused, not mixed
    from effir.core.errors import EffirError

    other = {**scores, "mlp": [0.0 if i not in final["dropped_mlp"] else 1.0 for i in range(len(scores["mlp"]))]}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(EffirError, match="1-drop: dropped MLPs"):
        effir_recipe(str(tiny_llama), str(tiny_dataset), tmp_path / "r", drop_fraction=0.5, reduction=0.3,
                     importance=str(tmp_path / "other.json"))
    # the width cut chosen without gate training
    effir_recipe(str(tiny_llama), str(tiny_dataset), tmp_path / "a", drop_fraction=0.5, reduction=0.3,
                 cfg=TrainConfig(batch_size=4, max_steps=1, lr=1e-3, lora=True, lora_r=4), calibration=8,
                 importance=str(tmp_path / "r" / "0-analyze" / "importance.json"), slim_by="activation")
    by_activation = json.loads((tmp_path / "a" / "3-final" / "effir.json").read_text())
    assert by_activation["dropped_mlp"] == final["dropped_mlp"]
    assert by_activation["mlp_widths"] == {"1": 45, "3": 45}  # 70 % of each layer (the gates choose across layers)
    assert by_activation["history"][1]["by"] == "activation"
    # each recipe records the width cut it made, and the gates' settings only where gates were trained
    recipes = {r: json.loads((tmp_path / r / "recipe.json").read_text()) for r in ("r", "a")}
    assert recipes["r"]["slim_by"] == "gate" and recipes["r"]["slim"]["lr"] == 0.05
    assert recipes["a"]["slim_by"] == "activation" and recipes["a"]["slim"] is None
    # a cut taught to imitate its parent, its gates too (--slim-loss distill): the teacher reaches the gate training
    from effir.compression.steps import gate_training_config

    imitate = TrainConfig(batch_size=4, max_steps=1, lr=1e-3, lora=True, lora_r=4, contrastive_weight=0.0,
                          distill_weight=1.0)
    effir_recipe(str(tiny_llama), str(tiny_dataset), tmp_path / "d", drop_fraction=0.5, reduction=0.3, cfg=imitate,
                 slim_cfg=gate_training_config(imitate, max_steps=2, loss="distill"), teacher=str(tiny_llama),
                 importance=str(tmp_path / "r" / "0-analyze" / "importance.json"), pooling="mean")
    gate_log = [json.loads(line) for line in (tmp_path / "d" / "work-2" / "log.jsonl").read_text().splitlines()]
    assert len(gate_log) == 2 and all(r["distill"] > 0 for r in gate_log)
    assert json.loads((tmp_path / "d" / "recipe.json").read_text())["slim"]["contrastive_weight"] == 0.0


def test_gte_loss_is_the_written_sum():
    """GTE's loss, term by term from its definition (each of the four sums, and which self-pairs are left out)."""
    import math

    import torch.nn.functional as F

    from effir.compression.train import info_nce

    torch.manual_seed(0)
    B, n, tau = 4, 1, 0.05
    q = F.normalize(torch.randn(B, 8), dim=-1)
    p = F.normalize(torch.randn(B * (1 + n), 8), dim=-1)
    s = lambda a, b: math.exp(float(a @ b) / tau)  # noqa: E731
    expected = 0.0
    for i in range(B):
        pos = p[i * (1 + n)]
        z = (sum(s(q[i], d) for d in p) + sum(s(q[i], q[j]) for j in range(B) if j != i)
             + sum(s(q[j], pos) for j in range(B)) + sum(s(pos, d) for k, d in enumerate(p) if k != i * (1 + n)))
        expected += -math.log(s(q[i], pos) / z) / B
    assert info_nce(q, p, tau, "gte").item() == pytest.approx(expected, rel=1e-4)
    plain = F.cross_entropy(q @ p.T / tau, torch.tensor([0, 2, 4, 6]))
    assert info_nce(q, p, tau).item() == pytest.approx(plain.item())


def test_score_distillation_is_the_written_kl():
    """KL(teacher ‖ student) over each query's in-batch passages, from its definition; zero when the student ranks
    with the teacher's scores even though its vectors lie elsewhere (a rotation), unlike the cosine term."""
    import math

    import torch.nn.functional as F

    from effir.compression.train import distillation

    torch.manual_seed(0)
    B, tau = 3, 0.05
    q, p = F.normalize(torch.randn(B, 8), dim=-1), F.normalize(torch.randn(2 * B, 8), dim=-1)
    tq, tp = F.normalize(torch.randn(B, 8), dim=-1), F.normalize(torch.randn(2 * B, 8), dim=-1)

    def softmax(row):
        e = [math.exp(float(x) / tau) for x in row]
        return [x / sum(e) for x in e]

    expected = 0.0
    for i in range(B):
        t, s = softmax(tq[i] @ tp.T), softmax(q[i] @ p.T)
        expected += sum(a * math.log(a / b) for a, b in zip(t, s)) / B
    assert distillation(q, p, tq, tp, tau, "scores").item() == pytest.approx(expected, rel=1e-4)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8))
    assert distillation(tq @ rotation, tp @ rotation, tq, tp, tau, "scores").item() == pytest.approx(0, abs=1e-5)
    assert distillation(tq @ rotation, tp @ rotation, tq, tp, tau, "cosine").item() > 0.1
    with pytest.raises(ValueError, match="unknown distillation loss"):
        distillation(q, p, tq, tp, tau, "mse")


def test_layer_distillation_is_the_written_mean():
    """Mean over layers of the mean over real tokens (padding left out) of 1 − cos after standardising both by the
    teacher's per-channel statistics; 0 when the states agree; a massive channel both share does not hide the
    disagreement elsewhere; a teacher of another depth is refused."""
    import torch.nn.functional as F

    from effir.compression.train import layer_distillation

    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    real = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    student = tuple(torch.randn(2, 3, 8) for _ in range(2))
    teacher = tuple(torch.randn(2, 3, 8) for _ in range(2))
    expected = 0.0
    for s, u in zip(student, teacher):
        tokens = torch.stack([u[b, t] for b, t in real])
        mean, spread = tokens.mean(0), tokens.std(0, unbiased=False) + 1e-6
        expected += sum(1 - F.cosine_similarity((s[b, t] - mean) / spread, (u[b, t] - mean) / spread, dim=0).item()
                        for b, t in real) / len(real) / 2
    assert layer_distillation(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)
    assert layer_distillation(teacher, teacher, mask).item() == pytest.approx(0, abs=1e-6)
    massive = torch.zeros(8)
    massive[3] = 500.0
    raw = 1 - F.cosine_similarity(student[0][0, 0] + massive, teacher[0][0, 0] + massive, dim=0).item()
    shifted = tuple(x + massive for x in student), tuple(x + massive for x in teacher)
    assert raw < 1e-4 and layer_distillation(*shifted, mask).item() > 0.5
    padding_only = tuple(torch.where(mask.bool().unsqueeze(-1), t, torch.randn(2, 3, 8)) for t in teacher)
    assert layer_distillation(padding_only, teacher, mask).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="1 layers and the teacher 2"):
        layer_distillation(student[:1], teacher, mask)


def test_a_cut_learns_its_parents_layers(tmp_path, tiny_llama):
    """--distill-loss layers: the cut model's token states move towards its parent's, and the log
    keeps the layer term apart from the whole."""
    from effir.compression.pairs import Example
    from effir.compression.steps import drop, finetune
    from effir.compression.train import TrainConfig, layer_distillation
    from effir.encoder.model import embed_with_states

    examples = [Example(f"about {w}", f"a passage about {w} and more", []) for w in "abcdefgh"]
    drop(str(tiny_llama), tmp_path / "cut", None, mlp_layers=[1, 2], attn_layers=[1, 2])  # far enough to learn
    parent, cut = Encoder(resolve(str(tiny_llama)), device="cpu"), Encoder(resolve(str(tmp_path / "cut")), device="cpu")
    ids = parent.tokenize(TEXTS, "passage")
    vec, states, mask = parent.forward_states(ids)
    assert len(states) == 4 and torch.allclose(vec, parent.forward_ids(ids))

    def distance(enc):
        return layer_distillation(enc.forward_states(ids)[1], states, mask).item()

    cfg = TrainConfig(batch_size=4, epochs=8, lr=1e-3, lora=True, lora_r=4, negatives=0, distill_weight=1.0,
                      contrastive_weight=0.0, distill_loss="layers")
    child = finetune(str(tmp_path / "cut"), tmp_path / "c", examples, cfg, tmp_path / "cw", teacher=str(tiny_llama))
    log = [json.loads(line) for line in (tmp_path / "cw" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 16 and all(0 < s["distill_layers"] < s["distill"] == pytest.approx(s["loss"]) for s in log)
    assert distance(Encoder(resolve(child.path), device="cpu")) < 0.7 * distance(cut)
    with torch.no_grad():  # the training forward gives what the encoder gives
        assert torch.allclose(embed_with_states(parent.model, ids, parent.tokenizer.pad_token_id, parent.spec,
                                                "cpu", states=False)[0], vec)


def test_imitation_and_infonce_are_weighed_together(tmp_path, tiny_llama):
    """--distill-from with --contrastive-weight 0.5 (smollm2-effir-2x-gact-mixed-3k): every step learns from
    0.5 · InfoNCE + 1 · (1 − cos to the teacher), and the log keeps both terms."""
    from effir.compression.pairs import Example
    from effir.compression.steps import drop, finetune
    from effir.compression.train import TrainConfig

    examples = [Example(f"about {w}", f"a passage about {w} and more", []) for w in "abcdefgh"]
    drop(str(tiny_llama), tmp_path / "cut", None, mlp_layers=[1, 2])
    cfg = TrainConfig(batch_size=4, epochs=2, lr=1e-3, lora=True, lora_r=4, negatives=0, distill_weight=1.0,
                      contrastive_weight=0.5)
    finetune(str(tmp_path / "cut"), tmp_path / "c", examples, cfg, tmp_path / "cw", teacher=str(tiny_llama))
    log = [json.loads(line) for line in (tmp_path / "cw" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all(r["info_nce"] > 0 and r["distill"] > 0 for r in log)
    assert all(r["loss"] == pytest.approx(0.5 * r["info_nce"] + r["distill"], abs=2e-4) for r in log)


def test_training_without_a_loss_stops(tmp_path, tiny_llama):
    """InfoNCE weighted 0 and no teacher (a distillation config reused without it) would train on nothing."""
    from effir.compression.train import TrainConfig, train

    spec = resolve(str(tiny_llama))
    model, tok = load_model(spec, device="cpu")
    with pytest.raises(ValueError, match="no loss to learn from"):
        train(model, tok, spec, [], TrainConfig(contrastive_weight=0.0, distill_weight=1.0), tmp_path)
    # the recipe's gate training, made from such a config, learns by InfoNCE
    from effir.compression.steps import gate_training_config

    imitating = TrainConfig(contrastive_weight=0.0, distill_weight=1.0, lora=True)
    gates = gate_training_config(imitating, max_steps=40)
    assert (gates.contrastive_weight, gates.distill_weight, gates.lora, gates.lr, gates.max_steps) == (1.0, 0.0, False,
                                                                                                    0.05, 40)
    # or, asked to, by the training's own imitation; which needs a teacher to imitate
    gates = gate_training_config(imitating, max_steps=40, loss="distill")
    assert (gates.contrastive_weight, gates.distill_weight, gates.lora) == (0.0, 1.0, False)
    with pytest.raises(ValueError, match="need a teacher"):
        gate_training_config(TrainConfig(), loss="distill")
    # the gates keep the training's seed unless given their own (the last training repeated on the same cut)
    assert gate_training_config(TrainConfig(seed=1)).seed == 1
    assert gate_training_config(TrainConfig(seed=1), seed=0).seed == 0


def test_gates_learn_to_imitate_the_parent(tmp_path, tiny_llama):
    """--slim-loss distill: the gates of a cut model learn from 1 − cos to its parent alone (no InfoNCE), that
    distance falls, and the L0 term still pulls the kept share towards the target."""
    from effir.compression.pairs import Example
    from effir.compression.steps import drop, gate_training_config, slim
    from effir.compression.train import TrainConfig

    examples = [Example(f"about {w}", f"a passage about {w} and more", []) for w in "abcdefgh"]
    drop(str(tiny_llama), tmp_path / "cut", None, mlp_layers=[1, 2], attn_layers=[1, 2])  # far enough to learn
    cfg = gate_training_config(TrainConfig(batch_size=8, epochs=12, negatives=0, contrastive_weight=0.0,
                                           distill_weight=1.0), lr=0.1, loss="distill")
    _, widths = slim(str(tmp_path / "cut"), tmp_path / "s", examples, 0.25, cfg, tmp_path / "w", l0_weight=0.1,
                     teacher=str(tiny_llama))
    log = [json.loads(line) for line in (tmp_path / "w" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 12 and all(r["loss"] == pytest.approx(r["distill"] + 0.1 * max(r["l0"] - 0.75, 0), abs=2e-4)
                                  for r in log)
    distance = [r["distill"] for r in log]  # one batch of all eight pairs: the same texts every step
    assert all(b < a for a, b in itertools.pairwise(distance)) and distance[-1] < 0.9 * distance[0]
    assert log[-1]["l0"] < log[0]["l0"] and sum(widths.values()) == 96  # 75 % of the two kept MLPs
