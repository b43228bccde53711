"""Activation-aware low-rank decomposition: SVD-LLM's truncation-aware whitening, nested as in NSVD.

For a linear layer W [out, in] with calibration inputs X:
    XᵀX = S Sᵀ (Cholesky; the diagonal shifted if XᵀX is not positive definite)
    W S = U Σ Vᵀ,   W ≈ (U_k Σ_k) (V_kᵀ S⁻¹) = A·B      truncation error ‖(W − AB) X‖ is what the SVD minimises
Nested: stage 1 takes rank k1 (default 0.95·k) on the whitened problem; stage 2 takes rank k − k1 of the plain SVD
of what remains, W − A1B1, which keeps the layer closer to W on inputs unlike the calibration set.
The two stages stack into one pair of linears of rank k: W ≈ [A1 A2]·[B1; B2].
"""

from __future__ import annotations

import torch
from torch import nn

from effir.encoder.architecture import factor_linear


def whitening(gram: torch.Tensor) -> torch.Tensor:
    """Lower-triangular S with S Sᵀ = XᵀX (+ a diagonal shift until it is positive definite)."""
    gram = gram.double()
    shift = 0.0
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    scale = float(torch.diag(gram).mean()) or 1.0
    for _ in range(12):
        s, info = torch.linalg.cholesky_ex(gram + shift * eye)
        if int(info) == 0:
            return s
        shift = scale * 1e-6 if shift == 0.0 else shift * 10
    raise ValueError("calibration Gram matrix is not positive definite even after shifting its diagonal")


def whitened_svd(w: torch.Tensor, s: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [out, rank], B [rank, in] minimising ‖(W − AB) X‖ for XᵀX = S Sᵀ."""
    w = w.double()
    u, sigma, vt = torch.linalg.svd(w @ s, full_matrices=False)
    a = u[:, :rank] * sigma[:rank]
    # B = V_kᵀ S⁻¹, i.e. B S = V_kᵀ: a triangular solve instead of an inverse
    b = torch.linalg.solve_triangular(s, vt[:rank], upper=False, left=False)
    return a, b


def plain_svd(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    u, sigma, vt = torch.linalg.svd(w.double(), full_matrices=False)
    return u[:, :rank] * sigma[:rank], vt[:rank]


def nested_decomposition(w: torch.Tensor, gram: torch.Tensor, rank: int, k1_fraction: float = 0.95):
    """(A [out, rank], B [rank, in]) from the two-stage NSVD decomposition."""
    k1 = min(rank, max(1, int(round(k1_fraction * rank))))
    a1, b1 = whitened_svd(w, whitening(gram), k1)
    if k1 == rank:
        return a1, b1
    a2, b2 = plain_svd(w.double() - a1 @ b1, rank - k1)
    return torch.cat([a1, a2], 1), torch.cat([b1, b2], 0)


def rank_for(in_features: int, out_features: int, keep: float) -> int | None:
    """Rank keeping `keep` of the layer's parameters; None where a factored pair would not save FLOPs."""
    rank = int(keep * in_features * out_features / (in_features + out_features))
    if rank < 1 or rank * (in_features + out_features) >= in_features * out_features:
        return None
    return rank


@torch.no_grad()
def decompose(model: nn.Module, grams: dict[str, torch.Tensor], linears: dict[str, nn.Linear], keep: float,
              k1_fraction: float = 0.95) -> dict[str, int]:
    """Factor every block linear where it saves FLOPs; returns {module path: rank}."""
    paths = {id(m): n for n, m in model.named_modules()}
    ranks = {}
    for key, lin in linears.items():
        rank = rank_for(lin.in_features, lin.out_features, keep)
        if rank is None:
            continue
        a, b = nested_decomposition(lin.weight, grams[key], rank, k1_fraction)
        path = paths[id(lin)]
        new = factor_linear(model, path, rank)
        new.down.weight.copy_(b.to(new.down.weight))
        new.up.weight.copy_(a.to(new.up.weight))
        if lin.bias is not None:
            new.up.bias.copy_(lin.bias)
        ranks[path] = rank
    return ranks
