"""Weight quantisation, applied when a folder is loaded (recorded as `quantization` in effir.json).

* `int8-dynamic` (CPU): torch's dynamic quantisation of the linear layers; int8 weights, activations quantised
  per batch at run time with one scale per tensor (so results depend slightly on batching). Options (effir.json
  `quantization_config`): `per_channel` weight scales, and `fp32_linears` left unquantised, chosen by
  `outlier_ratios`: an LLM's "massive activations" (a few tokens with inputs thousands of times the rest, e.g.
  SmolLM2's MLP 11) take the whole range of a per-tensor scale, and every other token is rounded to a few levels.
* `int8-token` (CPU): W8A8 with int32 accumulation (`torch._int_mm`): int8 weights with one scale per output
  channel, activations quantised at run time with one scale per token, so a token with massive activations only
  coarsens its own row: `y = (q(x) · q(W)ᵀ) ⊙ s_x s_wᵀ + b`.
* `bf16`: the whole model in bfloat16, weights and activations (the pooled vectors come back as float32). bf16
  keeps fp32's exponent range, so massive activations fit; each product loses mantissa bits, not range. Fast where
  the CPU multiplies bf16 natively (Intel AMX tiles or AVX512-BF16, which `device.native_bf16` asks torch for;
  oneDNN's kernels use them), far slower than fp32 where it does not (AVX2-only CPUs emulate it).
* `nf4` (CUDA): 4-bit NormalFloat weights through bitsandbytes `Linear4bit`, fp16 compute.

Composable with any EffiR folder: drop / slim first, quantise last.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from effir.core.device import native_bf16
from effir.encoder import architecture

logger = logging.getLogger(__name__)

METHODS = ("int8-dynamic", "int8-token", "bf16", "nf4")


class Int8TokenLinear(nn.Module):
    """A linear layer as W8A8: per-output-channel int8 weights, per-token int8 activations, int32 products."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().float()
        scale = w.abs().amax(1).clamp_min(1e-12) / 127
        self.register_buffer("weight_t", torch.round(w / scale[:, None]).to(torch.int8).t().contiguous())
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        scale = torch.linalg.vector_norm(rows, float("inf"), dim=1, keepdim=True).clamp_min_(1e-12).div_(127)
        products = torch._int_mm(rows.div(scale).round_().to(torch.int8), self.weight_t)
        # dequantise into the int32 buffer itself (same element size): at document batch sizes a fresh tensor per
        # elementwise step cost a third of the layer's time (bench/int8_token_kernel.py)
        y = torch.mul(products, scale, out=products.view(torch.float32)).mul_(self.weight_scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


def apply_to_model(model: nn.Module, spec, device: str) -> nn.Module:
    """The encoder's runtime variant for a folder whose effir.json records `quantization` (pyproject's entry points)."""
    config = spec.extra.get("quantization_config") or {}
    return quantize(model, spec.extra["quantization"], device, per_channel=config.get("per_channel", False),
                    fp32_linears=config.get("fp32_linears", ()))


def outlier_ratios(model: nn.Module, tokenizer, texts: list[str], spec=None, max_length: int = 256) -> dict[str, float]:
    """Per block linear: the largest |x| of its input over the real tokens of `texts`, divided by the median over
    tokens of each token's largest |x|. Thousands where a few tokens carry massive activations; ~1–10 elsewhere."""
    from effir.compression.sparsity import collect_inputs

    _, maxima = collect_inputs(model, tokenizer, texts, max_length=max_length, spec=spec,
                               statistic=lambda x: x.abs().amax(1), combine=lambda a, b: torch.cat([a, b]))
    return {name: round(float(m.max() / m.median().clamp_min(1e-12)), 2) for name, m in maxima.items()}


def quantize(model: nn.Module, method: str, device: str, per_channel: bool = False,
             fp32_linears=()) -> nn.Module:
    """`fp32_linears`: block linears ("layer.path", as `sparsity.block_linears` names them) left unquantised."""
    if method == "int8-dynamic":
        if device != "cpu":
            raise ValueError("int8-dynamic quantisation runs on the CPU; use nf4 on CUDA")
        qconfig = (torch.ao.quantization.per_channel_dynamic_qconfig if per_channel
                   else torch.ao.quantization.default_dynamic_qconfig)
        keep = set(fp32_linears)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is marked deprecated in torch 2.13
            blocks = architecture.layers(model)
            for i in range(len(blocks)):  # only the transformer blocks: embeddings stay fp32
                chosen = {name: qconfig for name, m in blocks[i].named_modules()
                          if isinstance(m, nn.Linear) and f"{i}.{name}" not in keep}
                blocks[i] = torch.ao.quantization.quantize_dynamic(blocks[i], chosen, dtype=torch.qint8)
        return model
    if method == "int8-token":
        if device != "cpu":
            raise ValueError("int8-token quantisation runs on the CPU; use nf4 on CUDA")
        return _swap_block_linears(model, Int8TokenLinear, fp32_linears)
    if method == "bf16":
        if device == "cpu" and not native_bf16():
            logger.warning("bf16 on a CPU without native bf16 (AMX or AVX512-BF16): its matrix products are emulated, "
                           "far slower than fp32")
        return model.to(torch.bfloat16)
    if method == "nf4":
        if not device.startswith("cuda"):
            raise ValueError("nf4 quantisation needs CUDA and bitsandbytes; on CPU use int8-dynamic")
        import bitsandbytes as bnb

        def nf4(child: nn.Linear) -> nn.Module:
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=torch.float16, quant_type="nf4")
            q.weight = bnb.nn.Params4bit(child.weight.data.cpu(), requires_grad=False, quant_type="nf4")
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data.cpu(), requires_grad=False)
            return q.to(device)

        return _swap_block_linears(model, nf4, fp32_linears)
    raise ValueError(f"unknown quantisation {method!r}; one of {METHODS}")


def _swap_block_linears(model: nn.Module, make, keep=()) -> nn.Module:
    """Replace every linear of the transformer blocks by `make(linear)`, except those named in `keep`
    ("layer.path", as `sparsity.block_linears` names them); embeddings stay as they are."""
    keep = set(keep)
    for i, layer in enumerate(architecture.layers(model)):
        for parent_name, parent in list(layer.named_modules()):
            for name, child in list(parent.named_children()):
                path = f"{i}.{parent_name}.{name}" if parent_name else f"{i}.{name}"
                if isinstance(child, nn.Linear) and path not in keep:
                    setattr(parent, name, make(child))
    return model
