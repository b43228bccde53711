"""Pooling, in one place: token states [B, T, H] + attention mask [B, T] → one vector per text."""

from __future__ import annotations

import torch


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if how == "cls":
        return hidden[:, 0]
    if how == "last":  # last real token (EOS when appended); works for right or left padding
        if bool(mask[:, -1].all()):
            return hidden[:, -1]
        last = mask.long().sum(1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ValueError(f"unknown pooling {how!r}")
