"""Contextual sparsity (ShadowLLM): per input, compute only the attention heads and MLP channels that matter.

A small predictor P reads layer 0's output, mean-pooled over the input's tokens, and scores every head and MLP
channel of layers 1..L−1. Each later layer then runs on the top `head_keep` of its heads and `mlp_keep` of its
channels, chosen per input: the kept rows / columns are gathered into smaller matrices (one set per input, batched
with bmm), so the skipped work is never done.

Targets (calibration, label-free): with an InfoNCE loss over title → body pairs from the corpus,
    head h:     Σ_t |Σ_{j∈h} ∂L/∂a_tj · a_tj|     a = the attention output entering the output projection
    channel c:  Σ_t |∂L/∂a_tc · a_tc|              a = the MLP activation entering the down projection
per input (the magnitude per token, then summed: a signed sum over tokens cancels and is mostly noise), then log
and z-scored per (input, layer, kind). P is trained with MSE on them, starting from the input-independent mean
ranking (zero last layer, bias = mean target) and stopped early on a validation split, so it only departs from
the static ranking where the input tells it more; it is judged by Spearman rank correlation on held-out inputs,
beside that static ranking's.
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

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


def _head_dim(model: nn.Module) -> int:
    cfg = model.config
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


# -- per-input gathered linears ----------------------------------------------------------------------------------

def _take_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for idx [B, k]; index_select copies whole rows, several times faster than advanced indexing on CPU."""
    return t.index_select(0, idx.flatten()).view(*idx.shape, *t.shape[1:])


def gathered_rows(x: torch.Tensor, weight: torch.Tensor, bias, rows: torch.Tensor) -> torch.Tensor:
    """y[b] = x[b] · W[rows[b]]ᵀ + bias[rows[b]]:  x [B, T, in], rows [B, k] → [B, T, k]."""
    y = torch.bmm(x, _take_rows(weight, rows).transpose(1, 2))
    return y if bias is None else y + _take_rows(bias, rows).unsqueeze(1)


def gathered_columns(x: torch.Tensor, weight_t: torch.Tensor, bias, cols: torch.Tensor) -> torch.Tensor:
    """y[b] = x[b] · W[:, cols[b]]ᵀ + bias:  x [B, T, k], weight_t = Wᵀ [in, out] → [B, T, out]."""
    y = torch.bmm(x, _take_rows(weight_t, cols))
    return y if bias is None else y + bias


def head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Kept heads [B, kh] → the projection rows they own [B, kh·head_dim]."""
    offsets = torch.arange(head_dim, device=heads.device)
    return (heads.unsqueeze(-1) * head_dim + offsets).flatten(1)


class Selection:
    """What the predictor chose for the current batch, shared by the layers: {(layer, "heads" | "mlp"): indices
    [B, k]}, and {(layer, "head_rows"): the projection rows of the kept heads}, worked out once per batch."""

    def __init__(self):
        self.mask = None
        self.kept: dict[tuple[int, str], torch.Tensor] = {}

    def __call__(self, layer: int, kind: str) -> torch.Tensor:
        return self.kept[(layer, kind)]


def _attention_function(module: nn.Module):
    """The attention kernel the model was configured with (eager / sdpa), as its own family defines it."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    eager = sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS.get_interface(module.config._attn_implementation, eager)


class _Gathered(nn.Module):
    """Wraps the dense module as `full` and shares its parameters. Subclasses that gather an output projection's
    columns keep a transposed copy of it (`weight_t`, not saved) so the kept columns are contiguous rows."""

    def __init__(self, selection: Selection, layer: int):
        super().__init__()
        self._selection, self.layer = selection, layer

    def kept(self, kind: str) -> torch.Tensor:
        return self._selection(self.layer, kind)


class GatheredBertSelfAttention(_Gathered):
    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full
        self.config, self.is_causal, self.scaling = full.config, False, full.scaling
        self.head_dim = full.attention_head_size
        self._attend = _attention_function(full)

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        b, t, _ = hidden_states.shape
        rows = self.kept("head_rows")
        q, k, v = (gathered_rows(hidden_states, lin.weight, lin.bias, rows).view(b, t, -1, self.head_dim).transpose(1, 2)
                   for lin in (self.full.query, self.full.key, self.full.value))
        out, _ = self._attend(self, q, k, v, attention_mask, dropout=0.0, scaling=self.scaling)
        return out.reshape(b, t, -1), None


class GatheredBertSelfOutput(_Gathered):
    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full
        self.register_buffer("weight_t", full.dense.weight.detach().t().contiguous(), persistent=False)

    def forward(self, hidden_states, input_tensor):
        y = gathered_columns(hidden_states, self.weight_t, self.full.dense.bias, self.kept("head_rows"))
        return self.full.LayerNorm(y + input_tensor)


class GatheredBertIntermediate(_Gathered):
    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full

    def forward(self, hidden_states):
        lin = self.full.dense
        return self.full.intermediate_act_fn(gathered_rows(hidden_states, lin.weight, lin.bias, self.kept("mlp")))


class GatheredBertOutput(_Gathered):
    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full
        self.register_buffer("weight_t", full.dense.weight.detach().t().contiguous(), persistent=False)

    def forward(self, hidden_states, input_tensor):
        y = gathered_columns(hidden_states, self.weight_t, self.full.dense.bias, self.kept("mlp"))
        return self.full.LayerNorm(y + input_tensor)


class GatheredLlamaAttention(_Gathered):
    """Query heads gathered per input; the (few, shared) key/value heads are computed whole, then each kept query
    head is paired with its own key/value head."""

    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full
        self.config, self.is_causal, self.scaling = full.config, full.is_causal, full.scaling
        self.head_dim, self.groups = full.head_dim, full.num_key_value_groups
        self.num_key_value_groups = 1  # already paired below
        self.register_buffer("weight_t", full.o_proj.weight.detach().t().contiguous(), persistent=False)
        self._attend = _attention_function(full)
        self._rotary = sys.modules[type(full).__module__].apply_rotary_pos_emb

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        b, t, _ = hidden_states.shape
        heads, rows = self.kept("heads"), self.kept("head_rows")
        d = self.full
        q = gathered_rows(hidden_states, d.q_proj.weight, d.q_proj.bias, rows).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = d.k_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = d.v_proj(hidden_states).view(b, t, -1, self.head_dim).transpose(1, 2)
        q, k = self._rotary(q, k, *position_embeddings)
        pair = (heads // self.groups)[:, :, None, None].expand(-1, -1, t, self.head_dim)
        k, v = k.gather(1, pair), v.gather(1, pair)
        out, _ = self._attend(self, q, k, v, attention_mask, dropout=0.0, scaling=self.scaling)
        return gathered_columns(out.reshape(b, t, -1), self.weight_t, d.o_proj.bias, rows), None


class GatheredLlamaMLP(_Gathered):
    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full
        self.register_buffer("weight_t", full.down_proj.weight.detach().t().contiguous(), persistent=False)

    def forward(self, x):
        d, keep = self.full, self.kept("mlp")
        h = d.act_fn(gathered_rows(x, d.gate_proj.weight, d.gate_proj.bias, keep)) * \
            gathered_rows(x, d.up_proj.weight, d.up_proj.bias, keep)
        return gathered_columns(h, self.weight_t, d.down_proj.bias, keep)


# -- attaching the predictor -------------------------------------------------------------------------------------

def _masked_mean(hidden: torch.Tensor, mask) -> torch.Tensor:
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
    head_dim = _head_dim(model)

    def capture_mask(mod, args, kwargs):
        selection.mask = kwargs.get("attention_mask")

    @torch.no_grad()
    def choose(mod, args, out):
        pooled = _masked_mean(out[0] if isinstance(out, tuple) else out, selection.mask).float()
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
            block.attention.output = GatheredBertSelfOutput(block.attention.output, selection, layer)
        else:
            block.intermediate = GatheredBertIntermediate(block.intermediate, selection, layer)
            block.output = GatheredBertOutput(block.output, selection, layer)
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


# -- calibration targets and training --------------------------------------------------------------------------

def _importance_inputs(model: nn.Module, layout) -> dict[tuple[int, str], nn.Module]:
    """The linear whose input is what each unit group's importance is measured on."""
    blocks = architecture.layers(model)
    out = {}
    for layer, kind, _ in layout:
        block = blocks[layer]
        if kind == "mlp":
            out[(layer, kind)] = architecture.mlp_linears(block)[1]
        else:
            out[(layer, kind)] = block.self_attn.o_proj if hasattr(block, "self_attn") else block.attention.output.dense
    return out


def importance_targets(model, encoder, pairs: list[tuple[str, str]], batch_size: int = 16,
                       temperature: float = 0.05, progress=None):
    """(features [N, d], targets {(layer, kind): [N, n]}) for the 2·len(pairs) texts (queries then passages)."""
    from effir.encoder.model import embed

    model.eval()
    layout = predictor_layout(model)
    inputs = _importance_inputs(model, layout)
    head_dim = _head_dim(model)
    blocks = architecture.layers(model)
    acts: dict = {}
    hooks = [lin.register_forward_pre_hook(lambda mod, args, key=key: acts.__setitem__(key, args[0]))
             for key, lin in inputs.items()]
    hooks.append(blocks[0].register_forward_hook(
        lambda mod, args, out: acts.__setitem__("layer0", out[0] if isinstance(out, tuple) else out)))
    mask_box = {}
    hooks.append(model.register_forward_pre_hook(
        lambda mod, args, kwargs: mask_box.__setitem__("mask", kwargs.get("attention_mask")), with_kwargs=True))
    features = {"query": [], "passage": []}
    targets = {"query": {k: [] for k in inputs}, "passage": {k: [] for k in inputs}}
    pad = encoder.tokenizer.pad_token_id
    try:
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            side_acts, vecs = {}, {}
            for side, texts in (("query", [q for q, _ in batch]), ("passage", [p for _, p in batch])):
                vecs[side] = embed(model, encoder.tokenize(texts, side), pad, encoder.spec, encoder.device)
                side_acts[side] = {k: acts[k] for k in inputs}
                features[side].append(_masked_mean(acts["layer0"], mask_box["mask"]).detach())
            loss = F.cross_entropy(vecs["query"] @ vecs["passage"].T / temperature,
                                   torch.arange(len(batch), device=vecs["query"].device))
            keys = list(inputs)
            flat = [side_acts[s][k] for s in ("query", "passage") for k in keys]
            grads = torch.autograd.grad(loss, flat)
            for j, (side, key) in enumerate((s, k) for s in ("query", "passage") for k in keys):
                contrib = (grads[j] * flat[j]).detach()  # [B, T, width]; padding has no gradient
                if key[1] == "heads":
                    contrib = contrib.view(*contrib.shape[:2], -1, head_dim).sum(-1)
                score = contrib.abs().sum(1)
                targets[side][key].append(score)
            if progress is not None:
                progress.update(len(batch))
    finally:
        for h in hooks:
            h.remove()
    x = torch.cat(features["query"] + features["passage"]).float()
    y = {k: torch.cat(targets["query"][k] + targets["passage"][k]).float() for k in inputs}
    return x, y, layout


def normalise(t: torch.Tensor) -> torch.Tensor:
    """log importance, z-scored per input: only the ranking within a layer decides what is kept."""
    t = torch.log(t + 1e-12 + 1e-6 * t.mean(-1, keepdim=True))
    return (t - t.mean(-1, keepdim=True)) / t.std(-1, keepdim=True).clamp(min=1e-6)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rank correlation per row of [N, n] tensors."""
    ra = a.argsort(-1).argsort(-1).float()
    rb = b.argsort(-1).argsort(-1).float()
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1)).clamp(min=1e-12)


def train_predictor(x: torch.Tensor, y: dict, layout, width: int = 512, epochs: int = 100, lr: float = 1e-3,
                    held_out: float = 0.2, seed: int = 0) -> tuple[ShadowPredictor, dict]:
    """MSE on normalised targets with early stopping; returns the predictor and its held-out figures."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    order = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(round(held_out * len(order))))
    test, rest = order[:cut], order[cut:]
    val, fit = rest[:max(1, len(rest) // 10)], rest[max(1, len(rest) // 10):]
    target = torch.cat([normalise(y[(layer, kind)]) for layer, kind, _ in layout], dim=-1)
    predictor = ShadowPredictor(x.size(1), layout, width)
    last = predictor.net[-1]
    with torch.no_grad():  # start at the static ranking: every input gets the mean target
        last.weight.zero_()
        last.bias.copy_(target[fit].mean(0))
    opt = torch.optim.AdamW(predictor.parameters(), lr=lr, weight_decay=1e-2)
    best, best_state, batch = float("inf"), None, 64
    for _ in tqdm(range(epochs), desc="shadow predictor", unit="epoch"):
        predictor.train()
        perm = fit[torch.randperm(len(fit))]
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            loss = F.mse_loss(predictor(x[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        predictor.eval()
        with torch.no_grad():
            val_loss = float(F.mse_loss(predictor(x[val]), target[val]))
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in predictor.state_dict().items()}
    predictor.load_state_dict(best_state)
    predictor.eval()
    with torch.no_grad():
        pred = predictor.split(predictor(x[test]))
        static = predictor.split(target[fit].mean(0, keepdim=True).expand(len(test), -1))
        truth = {k: normalise(v[test]) for k, v in y.items()}
        figures = {"held_out_inputs": len(test), "train_inputs": len(fit), "validation_inputs": len(val),
                   "held_out_mse": round(float(F.mse_loss(predictor(x[test]), target[test])), 4)}
        for kind in ("heads", "mlp"):
            keys = [k for k in pred if k[1] == kind]
            if keys:
                figures[f"spearman_{kind}"] = round(float(torch.stack(
                    [spearman(pred[k], truth[k]).mean() for k in keys]).mean()), 4)
                figures[f"spearman_{kind}_static"] = round(float(torch.stack(
                    [spearman(static[k], truth[k]).mean() for k in keys]).mean()), 4)
    return predictor, figures
