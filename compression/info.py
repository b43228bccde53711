"""Model cost: parameters (total and non-embedding) and analytic FLOPs per token."""

from __future__ import annotations

from torch import nn

from effir.encoder import architecture


def _is_linear(m: nn.Module) -> bool:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from effir.compression.quantize import Int8TokenLinear

    return isinstance(m, (nn.Linear, DynamicInt8Linear, Int8TokenLinear))


def _linear_params(m: nn.Module) -> int:
    bias = m.bias() if callable(m.bias) else m.bias  # a quantised linear's bias is a method
    return m.in_features * m.out_features + (m.out_features if bias is not None else 0)


def parameter_counts(model: nn.Module) -> dict:
    """Logical parameter counts: a quantised linear (int8, packed 4-bit) counts its in×out weights, as in fp32."""
    linears = [m for m in model.modules() if _is_linear(m)]
    in_linears = {id(p) for m in linears for p in m.parameters(recurse=False)}
    total = sum(_linear_params(m) for m in linears)
    total += sum(p.numel() for p in model.parameters() if id(p) not in in_linears)
    embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
    return {"params": total, "params_non_embedding": total - embedding}


def _part(name: str) -> str:
    """Which cost a linear inside a layer belongs to, by its path (both families, wrapped or not)."""
    if name.startswith(("mlp.", "intermediate.", "output.")):
        return "mlp"
    return "attn_kv" if any(k in name for k in ("k_proj", "v_proj", ".key", ".value")) else "attn_qo"


def flops_by_part(model: nn.Module, seq_len: int = 256) -> dict[int, dict[str, int]]:
    """{layer: {"mlp" | "attn_qo" | "attn_kv" | "attn_scores": forward FLOPs per token}}: 2·in·out per linear,
    and attention's QKᵀ and AV (2·2·seq_len·d_attn per token) for every attention sublayer still present."""
    cfg = model.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    out = {}
    for i, layer in enumerate(architecture.layers(model)):
        parts = {"mlp": 0, "attn_qo": 0, "attn_kv": 0, "attn_scores": 0}
        for name, m in layer.named_modules():
            if _is_linear(m):
                parts[_part(name)] += 2 * m.in_features * m.out_features
        if not architecture.attn_is_dropped(layer):
            parts["attn_scores"] = 4 * seq_len * heads * head_dim
        out[i] = parts
    return out


def flops_per_token(model: nn.Module, seq_len: int = 256) -> int:
    """Analytic forward FLOPs per token; for a contextually sparse model, those it really executes."""
    parts = flops_by_part(model, seq_len)
    if getattr(model, "shadow", None) is not None:
        from effir.compression.shadow import executed_flops_per_token

        return executed_flops_per_token(model, parts, seq_len)
    return sum(sum(p.values()) for p in parts.values())


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
