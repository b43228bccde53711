"""Weight quantisation, applied when a folder is loaded (recorded as `quantization` in effir.json).

* `int8-dynamic` (CPU): torch's dynamic quantisation of the linear layers; int8 weights, activations quantised
  per batch at run time (so results depend slightly on batching).
* `nf4` (CUDA): 4-bit NormalFloat weights through bitsandbytes `Linear4bit`, fp16 compute.

Composable with any EffiR folder: drop / slim first, quantise last.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from effir.encoder import architecture

METHODS = ("int8-dynamic", "nf4")


def apply_to_model(model: nn.Module, spec, device: str) -> nn.Module:
    """The encoder's runtime variant for a folder whose effir.json records `quantization` (pyproject's entry points)."""
    return quantize(model, spec.extra["quantization"], device)


def quantize(model: nn.Module, method: str, device: str) -> nn.Module:
    if method == "int8-dynamic":
        if device != "cpu":
            raise ValueError("int8-dynamic quantisation runs on the CPU; use nf4 on CUDA")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is marked deprecated in torch 2.13
            blocks = architecture.layers(model)
            for i in range(len(blocks)):  # only the transformer blocks: embeddings stay fp32
                blocks[i] = torch.ao.quantization.quantize_dynamic(blocks[i], {nn.Linear}, dtype=torch.qint8)
        return model
    if method == "nf4":
        if not device.startswith("cuda"):
            raise ValueError("nf4 quantisation needs CUDA and bitsandbytes; on CPU use int8-dynamic")
        import bitsandbytes as bnb

        for layer in architecture.layers(model):
            for parent in list(layer.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.Linear):
                        q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                              compute_dtype=torch.float16, quant_type="nf4")
                        q.weight = bnb.nn.Params4bit(child.weight.data.cpu(), requires_grad=False, quant_type="nf4")
                        if child.bias is not None:
                            q.bias = nn.Parameter(child.bias.data.cpu(), requires_grad=False)
                        setattr(parent, name, q.to(device))
        return model
    raise ValueError(f"unknown quantisation {method!r}; one of {METHODS}")
