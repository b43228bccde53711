"""Contextual sparsity (ShadowLLM): per input, compute only the attention heads and MLP channels that matter.

A small predictor P reads layer 0's output, mean-pooled over the input's tokens, and scores every head and MLP
channel of layers 1..L−1. Each later layer then runs on the top `head_keep` of its heads and `mlp_keep` of its
channels, chosen per input, through the gathered modules of `gathered.py`; `shadow_targets.py` trains P.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from effir.compression.gathered import (
    GatheredBertIntermediate,
    GatheredBertOutput,
    GatheredBertSelfAttention,
    GatheredLlamaAttention,
    GatheredLlamaMLP,
    Selection,
    head_rows,
)
from effir.encoder import architecture

SHADOW_WEIGHTS = "shadow.safetensors"


class ShadowPredictor(nn.Module):
    """pooled layer-0 output [B, d] → scores for every unit in `layout` ([(layer, "heads"|"mlp", n), ...])."""

    def __init__(self, dim: int, layout: list[tuple[int, str, int]], width: int = 512):
        super().__init__()
        self.layout = [tuple(x) for x in layout]
        self.width = width
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width), nn.GELU(),
                                 nn.Linear(width, sum(n for _, _, n in self.layout)))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)

    def split(self, scores: torch.Tensor) -> dict[tuple[int, str], torch.Tensor]:
        chunks = scores.split([n for _, _, n in self.layout], dim=-1)
        return {(layer, kind): c for (layer, kind, _), c in zip(self.layout, chunks)}


def predictor_layout(model: nn.Module) -> list[tuple[int, str, int]]:
    """Every head group and MLP still present in layers 1..L−1 (layer 0 runs dense: P reads its output)."""
    heads = model.config.num_attention_heads
    out = []
    for i, layer in enumerate(architecture.layers(model)):
        if i == 0:
            continue
        if not architecture.attn_is_dropped(layer):
            out.append((i, "heads", heads))
        if not architecture.mlp_is_dropped(layer):
            out.append((i, "mlp", architecture.mlp_width(layer)))
    return out


def _check_supported(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, architecture.LowRankLinear):
            raise ValueError(f"shadow sparsity needs dense linears; {name} is a factored low-rank pair")


def attention_head_dim(model: nn.Module) -> int:
    cfg = model.config
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


# -- attaching the predictor -------------------------------------------------------------------------------------

def masked_mean(hidden: torch.Tensor, mask) -> torch.Tensor:
    if mask is None:
        return hidden.mean(1)
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def keep_count(n: int, fraction: float) -> int:
    return max(1, min(n, int(math.ceil(fraction * n - 1e-9))))


def attach(model: nn.Module, predictor: ShadowPredictor, head_keep: float, mlp_keep: float) -> Selection:
    """Make `model` contextually sparse in place: layer 0's output → predictor → gathered layers 1..L−1."""
    _check_supported(model)
    selection = Selection()
    blocks = architecture.layers(model)
    counts = {(layer, kind): keep_count(n, head_keep if kind == "heads" else mlp_keep)
              for layer, kind, n in predictor.layout}
    model.shadow = predictor.to(next(model.parameters()).device)
    model.shadow_keep = {"head_keep": head_keep, "mlp_keep": mlp_keep}
    head_dim = attention_head_dim(model)

    def capture_mask(mod, args, kwargs):
        selection.mask = kwargs.get("attention_mask")

    @torch.no_grad()
    def choose(mod, args, out):
        pooled = masked_mean(out[0] if isinstance(out, tuple) else out, selection.mask).float()
        scores = predictor.split(predictor(pooled))
        selection.kept = {key: s.topk(counts[key], dim=-1).indices.sort(dim=-1).values for key, s in scores.items()}
        selection.kept.update({(layer, "head_rows"): head_rows(idx, head_dim)
                               for (layer, kind), idx in list(selection.kept.items()) if kind == "heads"})

    model.register_forward_pre_hook(capture_mask, with_kwargs=True)
    blocks[0].register_forward_hook(choose)
    for layer, kind, _ in predictor.layout:
        block = blocks[layer]
        if architecture.family(model) == "llama":
            if kind == "heads":
                block.self_attn = GatheredLlamaAttention(block.self_attn, selection, layer)
            else:
                block.mlp = GatheredLlamaMLP(block.mlp, selection, layer)
        elif kind == "heads":
            block.attention.self = GatheredBertSelfAttention(block.attention.self, selection, layer)
            block.attention.output = GatheredBertOutput(block.attention.output, selection, layer, "head_rows")
        else:
            block.intermediate = GatheredBertIntermediate(block.intermediate, selection, layer)
            block.output = GatheredBertOutput(block.output, selection, layer, "mlp")
    return selection


def executed_flops_per_token(model: nn.Module, dense_flops: dict[int, dict[str, int]], seq_len: int) -> int:
    """FLOPs a token really costs under the kept fractions, with the predictor's cost spread over `seq_len`."""
    keep = {"heads": model.shadow_keep["head_keep"], "mlp": model.shadow_keep["mlp_keep"]}
    layout = {(layer, kind): n for layer, kind, n in model.shadow.layout}
    shared_kv = architecture.family(model) == "llama"  # key/value heads are computed whole there
    total = 0
    for layer, parts in dense_flops.items():
        for part, flops in parts.items():
            kind = "mlp" if part == "mlp" else "heads"
            n = layout.get((layer, kind))
            if n is None or (part == "attn_kv" and shared_kv):
                total += flops
            else:
                total += flops * keep_count(n, keep[kind]) // n
    predictor = sum(2 * m.in_features * m.out_features for m in model.shadow.modules() if isinstance(m, nn.Linear))
    return total + predictor // seq_len


def load(model: nn.Module, folder, settings: dict) -> Selection:
    """Rebuild the predictor recorded in effir.json `shadow` from `folder`/shadow.safetensors and attach it."""
    from pathlib import Path

    from safetensors.torch import load_file

    predictor = ShadowPredictor(model.config.hidden_size, settings["layout"], settings["width"])
    predictor.load_state_dict(load_file(Path(folder) / SHADOW_WEIGHTS))
    return attach(model, predictor.eval(), settings["head_keep"], settings["mlp_keep"])


def attach_from_folder(model: nn.Module, spec, device: str) -> nn.Module:
    """The encoder's runtime variant for a folder whose effir.json records `shadow` (see pyproject's entry points)."""
    if spec.extra.get("quantization"):
        raise ValueError(f"{spec.path}: contextual sparsity (shadow) gathers dense weights; it cannot be quantised")
    load(model, spec.path, spec.extra["shadow"])
    return model


attach_from_folder.needs_recorded_widths = True  # its predictors score the channels the folder recorded
