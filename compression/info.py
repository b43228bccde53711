"""Model cost: parameters (total and non-embedding) and analytic FLOPs per token."""

from __future__ import annotations

from torch import nn

from effir.encoder import architecture


def parameter_counts(model: nn.Module) -> dict:
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
    return {"params": total, "params_non_embedding": total - embedding}


def flops_per_token(model: nn.Module, seq_len: int = 256) -> int:
    """Forward FLOPs per token: 2·(in·out) for every linear in the layers, plus attention's
    QKᵀ and AV (2·2·seq_len·d_attn per token) for every attention sublayer still present."""
    cfg = model.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    flops = 0
    for layer in architecture.layers(model):
        flops += sum(2 * m.in_features * m.out_features for m in layer.modules() if isinstance(m, nn.Linear))
        if not architecture.attn_is_dropped(layer):
            flops += 4 * seq_len * heads * head_dim
    return flops


def model_bytes(model: nn.Module) -> int:
    """Bytes of the serialised state dict: counts int8 / 4-bit packed weights as stored, not as fp32."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def describe(model: nn.Module, seq_len: int = 256) -> dict:
    s = architecture.structure_of(model)
    return {**parameter_counts(model), "flops_per_token": flops_per_token(model, seq_len), "seq_len": seq_len,
            "model_bytes": model_bytes(model), "layers": len(architecture.layers(model)),
            "dropped_mlp": s["dropped_mlp"], "dropped_attn": s["dropped_attn"],
            "mlp_widths": s["mlp_widths"], "intermediate_size": model.config.intermediate_size}
