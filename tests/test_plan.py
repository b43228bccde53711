"""Compression to a budget: the planner's choice, its FLOP prediction against the cut model, and the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from click.testing import CliRunner

from effir.cli import main
from effir.compression import plan
from effir.compression.info import describe, flops_by_part
from effir.compression.slim import ChannelGates, channels_kept
from effir.core.errors import EffirError
from effir.core.models import resolve
from effir.encoder import architecture
from effir.encoder.model import load_model


def _parts(n_layers=4, mlp=100, attn=60):
    return {i: {"mlp": mlp, "attn_qo": attn // 2, "attn_kv": attn // 4, "attn_scores": attn // 4}
            for i in range(n_layers)}


SCORES = {"mlp": [0.10, 0.50, 0.20, 0.90],
          # layer 1's importance sits in a few channels, so cutting its width is cheap; layer 3's is spread evenly
          "mlp_channels": [[1.0] * 10, [10.0] * 2 + [0.1] * 8, [1.0] * 10, [1.0] * 10]}


def test_flop_ratio_by_hand():
    parts = _parts()  # 160 per layer, 640 in all; dropping layer 0's MLP removes 100, r=0.5 of the other 300: 150
    assert plan.flop_ratio(parts, [0], 0.5) == pytest.approx(640 / (640 - 100 - 150))


def test_plan_reaches_target_with_least_importance_removed():
    parts = _parts()
    target = 1.6
    chosen = plan.plan_for_target(SCORES, parts, parts, target, 256, 32)
    assert chosen.doc_flop_ratio >= target
    # brute force over every depth and a fine width grid: nothing reaches the target with less removed
    for n, r in itertools.product(range(5), [i / 100 for i in range(51)]):
        other = plan.plan_for_cut(SCORES, parts, parts, n, r, 256, 32)
        if other.doc_flop_ratio >= target:
            assert other.importance_removed >= chosen.importance_removed - 1e-9, (n, r)
    # the cheapest way here is depth on layer 0 plus width, not a second whole layer (layer 2, S = 0.2)
    assert chosen.dropped_mlp == [0] and 0 < chosen.reduction <= 0.5


def test_plan_follows_measured_drift_order():
    """With a greedy drift order the depth cut is its prefix, and removed importance is the measured D(S)."""
    scores = {**SCORES, "mlp_drift": {"order": [2], "drift": [0.05], "next": {"0": 0.3, "1": 0.2, "3": 0.4}}}
    parts = _parts()
    chosen = plan.plan_for_cut(scores, parts, parts, 2, 0.0, 256, 32)
    assert chosen.dropped_mlp == [1, 2] and chosen.ranking == "greedy output drift"
    assert chosen.importance_removed == pytest.approx(0.2)  # D({2}) + (D({2, 1}) − D({2}))
    assert plan.plan_for_cut(SCORES, parts, parts, 2, 0.0, 256, 32).dropped_mlp == [0, 2]  # cosine: 0.1, 0.2


def test_plan_refuses_unreachable_target():
    with pytest.raises(ValueError, match="no plan reaches 9.0x"):
        plan.plan_for_target(SCORES, _parts(), _parts(), 9.0, 256, 32)


def test_predicted_ratio_equals_flops_of_the_cut_model(tiny_llama):
    """Drop and slim a real (tiny) model as a plan says: its counted FLOPs give the predicted ratio."""
    model, _ = load_model(resolve(str(tiny_llama)), device="cpu")
    before = describe(model, seq_len=64)["flops_per_token"]
    parts = flops_by_part(model, 64)
    scores = {"mlp": [0.3, 0.1, 0.4, 0.2], "mlp_channels": [[1.0] * 64] * 4}
    chosen = plan.plan_for_target(scores, parts, parts, 1.3, 64, 64)
    architecture.apply_structure(model, dropped_mlp=chosen.dropped_mlp)
    gates = ChannelGates(model)
    with torch.no_grad():
        for z in gates.parameters():
            z.copy_(torch.rand_like(z) + 0.1)
    gates.fold(1 - chosen.reduction)
    after = describe(model, seq_len=64)["flops_per_token"]
    assert before / after == pytest.approx(chosen.doc_flop_ratio, rel=2e-3)


def test_plan_cli_prints_and_writes(tmp_path, tiny_llama, tiny_dataset):
    r = CliRunner().invoke(main, ["compress", "plan", "-m", str(tiny_llama), "--dataset", str(tiny_dataset),
                                  "--target-speedup", "1.3", "--out", str(tmp_path / "p"), "--json"])
    assert r.exit_code == 0, r.output
    printed = json.loads(r.stdout)
    assert printed == json.loads((tmp_path / "p" / "plan.json").read_text())
    assert printed["doc_flop_ratio"] >= 1.3 and printed["target"] == 1.3
    scores = json.loads((tmp_path / "p" / "importance.json").read_text())
    assert [len(c) for c in scores["mlp_channels"]] == [64] * 4
    r = CliRunner().invoke(main, ["compress", "plan", "-m", str(tiny_llama), "--importance",
                                  str(tmp_path / "p" / "importance.json"), "--target-speedup", "50"])
    assert r.exit_code != 0 and "no plan reaches 50.0x" in r.output
    r = CliRunner().invoke(main, ["compress", "plan", "-m", str(tiny_llama), "--importance",
                                  str(tmp_path / "p" / "importance.json"), "--target-speedup", "1.3",
                                  "--plan-depth", "4", "--json"])
    assert r.exit_code == 0, r.output
    deepest = json.loads(r.stdout)
    assert len(deepest["dropped_mlp"]) == 4 and deepest["reduction"] == 0 and deepest["chosen_by"] == "--plan-depth 4"
    r = CliRunner().invoke(main, ["compress", "plan", "-m", str(tiny_llama), "--importance",
                                  str(tmp_path / "p" / "importance.json"), "--plan-depth", "4"])
    assert r.exit_code != 0 and "give --target-speedup" in r.output


def test_plan_by_measure_picks_least_output_drift():
    """With a measure the planner minimises each whole plan's measured drift, not the summed importance, and keeps
    every other depth that reaches the target with its costs."""
    parts = _parts()
    by_sum = plan.plan_for_target(SCORES, parts, parts, 1.6, 256, 32)
    # a measure that makes every width cut dearer than any depth: the deepest plan wins
    measured = plan.plan_for_target(SCORES, parts, parts, 1.6, 256, 32,
                                    measure=lambda p: p.reduction + 0.01 * (4 - len(p.dropped_mlp)))
    assert len(measured.dropped_mlp) > len(by_sum.dropped_mlp)
    assert measured.output_drift == min(a["output_drift"] for a in measured.alternatives + [measured.to_json()]
                                        if a.get("output_drift") is not None)
    assert {a["n_drop"] for a in measured.alternatives} | {len(measured.dropped_mlp)} == \
        {a["n_drop"] for a in by_sum.alternatives} | {len(by_sum.dropped_mlp)}
    assert "output drift" in measured.describe() and by_sum.output_drift is None


def test_plan_depth_takes_that_candidate():
    """--plan-depth N: the candidate dropping N MLPs, with the least width cut that reaches the target at that depth,
    measured alone; the least-cost plan is among its alternatives."""
    parts = _parts()
    cheapest = plan.plan_for_target(SCORES, parts, parts, 1.6, 256, 32)
    measured = []
    deep = plan.plan_for_target(SCORES, parts, parts, 1.6, 256, 32, depth=2,
                                measure=lambda p: measured.append(len(p.dropped_mlp)) or 0.5)
    assert len(deep.dropped_mlp) == 2 and deep.doc_flop_ratio >= 1.6 and measured == [2]
    less = plan.plan_for_cut(SCORES, parts, parts, 2, deep.reduction - 0.01, 256, 32)
    assert less.doc_flop_ratio < 1.6  # the least width at that depth
    assert deep.chosen_by == "--plan-depth 2" and cheapest.chosen_by == "least importance removed"
    assert {"n_drop": 1, "reduction": cheapest.reduction, "importance_removed": cheapest.importance_removed,
            "output_drift": None} in deep.alternatives
    assert "chosen by --plan-depth 2" in deep.describe()
    with pytest.raises(EffirError, match="--plan-depth 9"):
        plan.plan_for_target(SCORES, parts, parts, 1.6, 256, 32, depth=9)


def test_channels_kept_is_the_sliced_cut(tiny_llama):
    """Zeroing the other channels' inputs computes what slicing them away does, and is undone on exit."""
    spec = resolve(str(tiny_llama))
    model, tok = load_model(spec, device="cpu")
    ids = torch.tensor([[5, 9, 13, 17, 21, 25]])
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state
        keep = {1: torch.arange(0, 64, 3), 3: torch.arange(10, 40)}
        with architecture.mlps_dropped(model, [2]), channels_kept(model, keep):
            masked = model(input_ids=ids).last_hidden_state
        assert torch.allclose(model(input_ids=ids).last_hidden_state, before)
        sliced, _ = load_model(spec, device="cpu")
        architecture.apply_structure(sliced, dropped_mlp=[2])
        for i, k in keep.items():
            architecture.keep_mlp_channels(sliced, i, k)
        assert torch.allclose(sliced(input_ids=ids).last_hidden_state, masked, atol=1e-5)
        assert not torch.allclose(masked, before, atol=1e-3)


def test_plan_cli_by_drift(tmp_path, tiny_llama, tiny_dataset):
    r = CliRunner().invoke(main, ["compress", "plan", "-m", str(tiny_llama), "--dataset", str(tiny_dataset),
                                  "--target-speedup", "1.3", "--plan-by", "drift", "--out", str(tmp_path / "p"),
                                  "--json"])
    assert r.exit_code == 0, r.output
    chosen = json.loads(r.stdout)
    drifts = [a["output_drift"] for a in chosen["alternatives"]]
    assert chosen["output_drift"] > 0 and all(d is not None and d >= chosen["output_drift"] for d in drifts)
    # the drift is measured on the dataset's texts: without one, a clear error
    r = CliRunner().invoke(main, ["compress", "plan", "-m", str(tiny_llama), "--importance",
                                  str(tmp_path / "p" / "importance.json"), "--target-speedup", "1.3",
                                  "--plan-by", "drift"])
    assert r.exit_code != 0 and "give --dataset" in r.output
