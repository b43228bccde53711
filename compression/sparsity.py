"""Unstructured and N:M sparsity baselines, each from its paper, on every linear layer of the transformer blocks.

Wanda (Sun et al., 2023): score_ij = |W_ij| · ‖X_j‖₂ (X the layer's calibration inputs); in every output row,
    zero the lowest-scoring `ratio` of the weights (or, N:M, the lowest N of every M consecutive inputs).
SparseGPT (Frantar & Alistarh, 2023): with H = XᵀX + λI, go through the columns in blocks; inside a block choose
    the mask by w²/[H⁻¹]²_jj (per row, so the ratio is exact), zero those weights and spread each one's error over the not-yet-visited columns with
    the OBS update  W[:, j:] −= (w_j / [H⁻¹]_jj) · H⁻¹[j, j:]  (H⁻¹ as its upper Cholesky factor).
Calibration inputs are collected layer by layer through forward hooks on real corpus texts.
"""

from __future__ import annotations

import torch
from torch import nn

from effir.core.models import ModelSpec
from effir.encoder import architecture
from effir.encoder.model import pad_batch, tokenize


def block_linears(model: nn.Module) -> dict[str, nn.Linear]:
    return {f"{i}.{name}": m for i, layer in enumerate(architecture.layers(model))
            for name, m in layer.named_modules() if isinstance(m, nn.Linear)}


@torch.no_grad()
def collect_inputs(model, tokenizer, texts, max_length=256, batch_size=8, device="cpu", hessian=False, spec=None,
                   statistic=None, combine=torch.add):
    """Per linear: ‖X_j‖₂² summed over tokens (Wanda) or H = Σ xxᵀ (SparseGPT), over real tokens only; or any
    `statistic(x [tokens, in])`, folded over batches by `combine`."""
    linears = block_linears(model)
    statistic = statistic or ((lambda x: x.T @ x) if hessian else (lambda x: (x * x).sum(0)))
    stats: dict[str, torch.Tensor] = {}
    mask_holder = {}
    hooks = []
    for name, lin in linears.items():
        def hook(mod, args, name=name):
            stat = statistic(args[0][mask_holder["m"]].float())  # over the batch's real tokens [tokens, in]
            stats[name] = combine(stats[name], stat) if name in stats else stat
        hooks.append(lin.register_forward_pre_hook(hook))
    spec = spec or ModelSpec(name="", path="")
    try:
        for s in range(0, len(texts), batch_size):
            ids = tokenize(tokenizer, spec, texts[s:s + batch_size], "passage", max_length)
            input_ids, mask = pad_batch(ids, tokenizer.pad_token_id, device)
            mask_holder["m"] = mask.bool()
            model(input_ids=input_ids, attention_mask=mask)
    finally:
        for h in hooks:
            h.remove()
    return linears, stats


def _nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """True where pruned: the n lowest of every m consecutive inputs in each row."""
    rows, cols = score.shape
    groups = score.reshape(rows, cols // m, m)
    idx = torch.topk(groups, n, dim=-1, largest=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True)
    return mask.reshape(rows, cols)


def wanda_mask(weight: torch.Tensor, sq_norm: torch.Tensor, ratio: float, nm: tuple[int, int] | None = None):
    score = weight.abs() * sq_norm.sqrt().to(weight)[None, :]
    if nm:
        return _nm_mask(score, *nm)
    k = int(round(weight.shape[1] * ratio))
    idx = torch.topk(score, k, dim=1, largest=False).indices
    return torch.zeros_like(weight, dtype=torch.bool).scatter_(1, idx, True)


@torch.no_grad()
def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, ratio: float, nm: tuple[int, int] | None = None,
                    block: int = 128, damp: float = 0.01) -> torch.Tensor:
    """Return the pruned, reconstructed weight (float32)."""
    W = weight.detach().clone().float()
    cols = W.shape[1]
    H = hessian.clone().float()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, device=H.device)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for b0 in range(0, cols, block):
        b1 = min(b0 + block, cols)
        W1, Hinv1 = W[:, b0:b1].clone(), Hinv[b0:b1, b0:b1]
        Err1 = torch.zeros_like(W1)
        d = torch.diag(Hinv1)
        prune = torch.zeros_like(W1, dtype=torch.bool)
        if nm is None:  # per row, exactly `ratio` of this block: the target sparsity is met exactly
            score = W1 ** 2 / d[None, :] ** 2
            k = int(round((b1 - b0) * ratio))
            if k:
                prune.scatter_(1, torch.topk(score, k, dim=1, largest=False).indices, True)
        for j in range(b1 - b0):
            if nm is not None and j % nm[1] == 0:  # N:M chosen on the weights as updated so far
                score = W1[:, j:j + nm[1]] ** 2 / d[j:j + nm[1]][None, :] ** 2
                prune[:, j:j + nm[1]].scatter_(1, torch.topk(score, nm[0], dim=1, largest=False).indices, True)
            w = W1[:, j]
            q = torch.where(prune[:, j], torch.zeros_like(w), w)
            err = (w - q) / d[j]
            W1[:, j:] -= err[:, None] * Hinv1[j, j:][None, :]
            W1[:, j] = q
            Err1[:, j] = err
        W[:, b0:b1] = W1
        W[:, b1:] -= Err1 @ Hinv[b0:b1, b1:]
    return W


@torch.no_grad()
def sparsify(model, tokenizer, texts, method: str, ratio: float = 0.5, nm: tuple[int, int] | None = None,
             max_length: int = 256, spec=None, device="cpu") -> dict:
    """Prune every linear layer of the transformer blocks in place; returns counted sparsity."""
    linears, stats = collect_inputs(model, tokenizer, texts, max_length=max_length, device=device,
                                    hessian=(method == "sparsegpt"), spec=spec)
    zeros = total = 0
    for name, lin in linears.items():
        if method == "wanda":
            lin.weight[wanda_mask(lin.weight, stats[name], ratio, nm)] = 0
        elif method == "sparsegpt":
            lin.weight.copy_(sparsegpt_prune(lin.weight, stats[name], ratio, nm).to(lin.weight))
        else:
            raise ValueError(f"unknown sparsity method {method!r}")
        zeros += int((lin.weight == 0).sum())
        total += lin.weight.numel()
    return {"method": method, "ratio": ratio, "nm": list(nm) if nm else None, "zeros": zeros, "weights": total,
            "sparsity": zeros / total}
