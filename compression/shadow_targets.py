"""Training the contextual-sparsity predictor (ShadowLLM): importance targets from calibration pairs, then MSE.

Targets (label-free): with an InfoNCE loss over title → body pairs from the corpus,
    head h:     Σ_t |Σ_{j∈h} ∂L/∂a_tj · a_tj|     a = the attention output entering the output projection
    channel c:  Σ_t |∂L/∂a_tc · a_tc|              a = the MLP activation entering the down projection
per input (the magnitude per token, then summed: a signed sum over tokens cancels and is mostly noise), then log
and z-scored per (input, layer, kind). P is trained with MSE on them, starting from the input-independent mean
ranking (zero last layer, bias = mean target) and stopped early on a validation split, so it only departs from
the static ranking where the input tells it more; it is judged by Spearman rank correlation on held-out inputs,
beside that static ranking's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from effir.compression.shadow import (
    ShadowPredictor,
    attention_head_dim,
    masked_mean,
    predictor_layout,
)
from effir.encoder import architecture


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
    head_dim = attention_head_dim(model)
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
                features[side].append(masked_mean(acts["layer0"], mask_box["mask"]).detach())
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
