"""bench/encode_breakdown.py's split of the forward pass by part, on tiny random models of both families."""

import pytest

from tests.conftest import bench_script


@pytest.fixture(scope="module")
def breakdown():
    return bench_script("encode_breakdown")


DOCS = [f"document {i} " + "words of a passage " * (i % 7 + 1) for i in range(12)]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_parts_split_the_forward_pass(breakdown, fixture, request):
    from effir.core.models import resolve
    from effir.encoder import architecture
    from effir.encoder.model import Encoder

    folder = request.getfixturevalue(fixture)
    full, cut = Encoder(resolve(str(folder)), device="cpu"), Encoder(resolve(str(folder)), device="cpu")
    for i in range(len(architecture.layers(cut.model))):
        architecture.drop_mlp(cut.model, i)
    times = breakdown.part_times({"full": full, "cut": cut}, DOCS, batch=4, rounds=2)
    for name, parts in times.items():
        assert all(len(s) == 2 for s in parts.values())
        for r in range(2):  # the parts are disjoint pieces of the pass: they and the rest add up to it
            assert sum(parts[p][r] for p in breakdown.PARTS) == pytest.approx(parts["forward"][r])
            assert parts["attention"][r] > 0 and parts["embedding"][r] > 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in cut.model.modules())  # hooks removed

    flops = {n: breakdown.part_flops(e.model, 16) for n, e in (("full", full), ("cut", cut))}
    assert flops["cut"]["mlp"] == 0 and flops["cut"]["attention"] == flops["full"]["attention"]
    summary = breakdown.part_summary(times, flops)
    assert summary["full"]["mlp"]["speedup"]["median"] == 1.0 and summary["full"]["attention"]["flop_ratio"] == 1.0
    assert summary["cut"]["attention"]["flop_ratio"] == 1.0 and "flop_ratio" not in summary["cut"]["norm"]
    assert summary["cut"]["mlp"]["flop_ratio"] is None   # no MLP FLOPs left
    assert summary["cut"]["attention"]["flop_share"] == 1.0
    assert summary["full"]["attention"]["flop_share"] + summary["full"]["mlp"]["flop_share"] == pytest.approx(1.0)


def test_part_of_names_both_families(breakdown):
    assert [breakdown.part_of(n) for n in ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm")] == \
        ["attention", "mlp", "norm", "norm"]
    assert [breakdown.part_of(n) for n in ("attention", "intermediate", "output")] == ["attention", "mlp", "mlp"]
