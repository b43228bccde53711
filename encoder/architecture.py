"""Where each model family keeps its sublayers, and the two structural edits EffiR makes.

LLaMA family (LLaMA, Mistral, Qwen2, SmolLM2), pre-norm:
    h = x + Attn(norm1(x));   y = h + MLP(norm2(h)),   MLP(u) = W_down(act(W_gate u) ⊙ W_up u)
BERT family (MiniLM), post-norm:
    h = LN(x + Attn(x));      y = LN(h + W_out act(W_in h))

A dropped sublayer is removed with its parameters (and its norm) and becomes an exact identity:
pre-norm `residual + 0`, post-norm `h` passed straight through.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class DroppedMLP(nn.Module):
    """LLaMA MLP removed: contributes an exact zero to the residual stream."""

    def forward(self, x):
        return x.new_zeros(())


class DroppedAttention(nn.Module):
    """LLaMA attention removed: (zero contribution, no attention weights)."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states.new_zeros(()), None


class PassThroughOutput(nn.Module):
    """BERT feed-forward removed: the layer returns its attention output unchanged (no LayerNorm)."""

    def forward(self, hidden_states, input_tensor):
        return input_tensor


class PassThroughAttention(nn.Module):
    """BERT attention removed: the layer's feed-forward sees the layer input."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states, None


def family(model: nn.Module) -> str:
    if hasattr(model, "layers") or hasattr(getattr(model, "model", None), "layers"):
        return "llama"
    if hasattr(getattr(model, "encoder", None), "layer"):
        return "bert"
    raise NotImplementedError(f"unsupported architecture {type(model).__name__}: expected a LLaMA- or BERT-family model")


def layers(model: nn.Module) -> nn.ModuleList:
    if family(model) == "llama":
        return model.layers if hasattr(model, "layers") else model.model.layers
    return model.encoder.layer


def mlp_is_dropped(layer: nn.Module) -> bool:
    return isinstance(getattr(layer, "mlp", None), DroppedMLP) or isinstance(getattr(layer, "output", None), PassThroughOutput)


def attn_is_dropped(layer: nn.Module) -> bool:
    return isinstance(getattr(layer, "self_attn", None), DroppedAttention) or isinstance(
        getattr(layer, "attention", None), PassThroughAttention)


def _unwrap(module: nn.Module) -> nn.Module:
    """A contextually sparse wrapper (compression.shadow) keeps the dense module as `full`."""
    return getattr(module, "full", module)


def mlp_linears(layer: nn.Module) -> tuple[list[nn.Linear], nn.Linear]:
    """(input projections whose rows are intermediate channels, output projection whose columns are)."""
    if hasattr(layer, "mlp"):
        mlp = _unwrap(layer.mlp)
        return [mlp.gate_proj, mlp.up_proj], mlp.down_proj
    return [_unwrap(layer.intermediate).dense], _unwrap(layer.output).dense


def mlp_width(layer: nn.Module) -> int:
    return mlp_linears(layer)[1].in_features


def drop_mlp(model: nn.Module, index: int) -> None:
    layer = layers(model)[index]
    if family(model) == "llama":
        layer.mlp = DroppedMLP()
        layer.post_attention_layernorm = nn.Identity()
    else:
        layer.intermediate = nn.Identity()
        layer.output = PassThroughOutput()


@contextmanager
def mlps_dropped(model: nn.Module, indices):
    """The model with these MLP sublayers dropped exactly as `drop_mlp` drops them, restored on exit: what a cut
    does can be measured without copying the model."""
    blocks = layers(model)
    saved = {i: dict(blocks[i].named_children()) for i in indices}
    try:
        for i in indices:
            drop_mlp(model, i)
        yield model
    finally:
        for i, children in saved.items():
            for name, child in children.items():
                setattr(blocks[i], name, child)


def drop_attention(model: nn.Module, index: int) -> None:
    layer = layers(model)[index]
    if family(model) == "llama":
        layer.self_attn = DroppedAttention()
        layer.input_layernorm = nn.Identity()
    else:
        layer.attention = PassThroughAttention()


class LowRankLinear(nn.Module):
    """y = up(down(x)): in → rank (no bias) → out (the original bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x):
        return self.up(self.down(x))


def factor_linear(model: nn.Module, name: str, rank: int) -> LowRankLinear:
    """Replace the linear at `name` (a path under model) with a LowRankLinear of `rank` (shapes only)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = getattr(parent, child)
    new = LowRankLinear(old.in_features, old.out_features, rank, old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, child, new)
    return new


@torch.no_grad()
def _swap_linear(model: nn.Module, old: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Replace `old` with a linear layer holding `weight` ([out, in]) and `bias`, on its device and dtype."""
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=old.weight.device,
                    dtype=old.weight.dtype)
    new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)
    _replace(model, old, new)


@torch.no_grad()
def keep_mlp_channels(model: nn.Module, index: int, keep: torch.Tensor, scale: torch.Tensor | None = None) -> None:
    """Slice layer `index`'s MLP to the intermediate channels `keep`; fold a per-channel `scale` into the
    output projection (W_out[:, c] *= scale[c]), which is exact because the output projection is linear."""
    ins, out = mlp_linears(layers(model)[index])
    keep = keep.to(out.weight.device)
    for lin in ins:
        _swap_linear(model, lin, lin.weight[keep], None if lin.bias is None else lin.bias[keep])
    w = out.weight[:, keep]
    _swap_linear(model, out, w if scale is None else w * scale[keep].to(w), out.bias)


# MLP widths are padded to a multiple of this when a model is loaded to encode: on the 2-core AVX2 CPU (fp32) a
# 799-channel SwiGLU MLP ran 1.10x slower than an 800-channel one, 751 than 752 1.16x (bench/width_alignment.py)
WIDTH_MULTIPLE = 8


@torch.no_grad()
def pad_mlp(model: nn.Module, index: int, width: int) -> None:
    """Grow layer `index`'s MLP to `width` channels with zero ones. Exact: a new channel's input rows and bias
    are zero, so its activation is act(0) = 0 (SiLU, GELU), and its output column is zero as well."""
    ins, out = mlp_linears(layers(model)[index])
    extra = width - out.in_features
    for lin in ins:
        _swap_linear(model, lin, F.pad(lin.weight, (0, 0, 0, extra)),
                     None if lin.bias is None else F.pad(lin.bias, (0, extra)))
    _swap_linear(model, out, F.pad(out.weight, (0, extra)), out.bias)


def align_mlp_widths(model: nn.Module, multiple: int = WIDTH_MULTIPLE) -> dict[int, int]:
    """Zero-pad every kept MLP of plain linear layers (not factored) to a multiple of `multiple` channels (same
    outputs, faster matrix products); {layer: width before} of those padded."""
    padded = {}
    for i, layer in enumerate(layers(model)):
        if mlp_is_dropped(layer):
            continue
        ins, out = mlp_linears(layer)
        if all(type(lin) is nn.Linear for lin in (*ins, out)) and mlp_width(layer) % multiple:
            padded[i] = mlp_width(layer)
            pad_mlp(model, i, -(-padded[i] // multiple) * multiple)
    return padded


def resize_mlp(model: nn.Module, index: int, width: int) -> None:
    """Give layer `index`'s MLP `width` channels (shapes only; weights are loaded afterwards)."""
    keep_mlp_channels(model, index, torch.arange(width))


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)
                return
    raise KeyError("module not found in model")


def apply_structure(model: nn.Module, dropped_mlp=(), dropped_attn=(), mlp_widths=None, low_rank=None) -> nn.Module:
    for i in dropped_attn:
        drop_attention(model, i)
    for i in dropped_mlp:
        drop_mlp(model, i)
    for i, width in (mlp_widths or {}).items():
        if int(i) not in dropped_mlp and mlp_width(layers(model)[int(i)]) != width:
            resize_mlp(model, int(i), int(width))
    for path, rank in (low_rank or {}).items():
        factor_linear(model, path, int(rank))
    return model


def structure_of(model: nn.Module) -> dict:
    """What effir.json records about a (possibly compressed) model."""
    blocks = layers(model)
    return {
        "low_rank": {n: m.rank for n, m in model.named_modules() if isinstance(m, LowRankLinear)},
        "dropped_mlp": [i for i, l in enumerate(blocks) if mlp_is_dropped(l)],
        "dropped_attn": [i for i, l in enumerate(blocks) if attn_is_dropped(l)],
        "mlp_widths": {i: mlp_width(l) for i, l in enumerate(blocks) if not mlp_is_dropped(l)},
    }
