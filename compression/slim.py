"""Self-slimming width reduction (EffiR §fine-grained): a learnable gate z per MLP intermediate channel.

    MLP(x) = W_down( ReLU(z) ⊙ act(W_gate x) ⊙ (W_up x) )          (LLaMA; BERT: W_out(ReLU(z) ⊙ act(W_in x)))
    L = InfoNCE + λ · relu(L0 − target),   L0 = mean_c σ(β·z_c)       (sigmoid relaxation of ‖ReLU(z)‖₀ / n)

After training, the channels with the lowest z (all with z ≤ 0, and across layers as many as the target asks)
are removed from the tensors, and ReLU(z) of the kept ones is folded into W_down's columns.

`activation_keep_sets` chooses the channels by what each adds to the output on calibration text: without
training, or after it on the gated model (ReLU(z_c)·a_c: the gates' learned scales with each channel's size).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from effir.encoder import architecture


class ChannelGates:
    """Gates on the input of each remaining MLP's output projection (a forward pre-hook: u → ReLU(z) ⊙ u)."""

    def __init__(self, model: nn.Module, init: float = 1.0):
        self.model = model
        self.z: dict[int, nn.Parameter] = {}
        self._hooks = []
        for i, layer in enumerate(architecture.layers(model)):
            if architecture.mlp_is_dropped(layer):
                continue
            _, out = architecture.mlp_linears(layer)
            z = nn.Parameter(torch.full((out.in_features,), init, device=out.weight.device))
            self.z[i] = z
            self._hooks.append(out.register_forward_pre_hook(lambda mod, args, z=z: (args[0] * torch.relu(z),)))

    def parameters(self) -> list[nn.Parameter]:
        return list(self.z.values())

    def l0(self, beta: float = 5.0) -> torch.Tensor:
        """Expected fraction of channels kept: mean σ(β·z)."""
        return torch.cat([torch.sigmoid(beta * z) for z in self.z.values()]).mean()

    def remove(self):
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def keep_sets(self, keep_fraction: float, min_channels: int = 8) -> dict[int, torch.Tensor]:
        """Global selection: the top `keep_fraction` of all channels by z, never a z ≤ 0, at least
        `min_channels` per layer."""
        with torch.no_grad():
            all_z = torch.cat([z for z in self.z.values()])
            n_keep = int(round(keep_fraction * all_z.numel()))
            threshold = torch.topk(all_z, n_keep).values.min() if n_keep else float("inf")
            out = {}
            for i, z in self.z.items():
                keep = torch.nonzero((z >= threshold) & (z > 0)).flatten()
                if keep.numel() < min_channels:
                    keep = torch.topk(z, min(min_channels, z.numel())).indices.sort().values
                out[i] = keep
            return out

    @torch.no_grad()
    def fold(self, keep_fraction: float, keep: dict[int, torch.Tensor] | None = None
             ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Slice every gated MLP to its kept channels (`keep`, or the top z) and fold ReLU(z) into W_down.
        Returns {layer: (kept channel indices, their folded scales)}: what rebuilds the cut from the parent."""
        keep = keep if keep is not None else self.keep_sets(keep_fraction)
        self.remove()
        out = {}
        for i, idx in keep.items():
            scale = torch.relu(self.z[i]).detach()
            architecture.keep_mlp_channels(self.model, i, idx, scale=scale)
            out[i] = (idx.cpu(), scale[idx].cpu())
        return out


@contextmanager
def channels_kept(model: nn.Module, keep: dict[int, torch.Tensor]):
    """The model with each listed MLP cut to its channels `keep[layer]`, undone on exit: gates fixed at 1 on the
    kept channels and 0 on the rest, which computes what slicing the rest away (`keep_mlp_channels`) computes."""
    if not keep:  # nothing to cut: no gates on the forward pass
        yield model
        return
    gates = ChannelGates(model)
    with torch.no_grad():
        for i, idx in keep.items():
            gates.z[i].zero_()[idx] = 1.0
    try:
        yield model
    finally:
        gates.remove()


CHANNELS_FILE = "channels.safetensors"


def save_channels(channels: dict[int, tuple[torch.Tensor, torch.Tensor]], path) -> None:
    from safetensors.torch import save_file

    state = {}
    for i, (idx, scale) in channels.items():
        state[f"{i}.keep"] = idx.to(torch.int64).contiguous()
        state[f"{i}.scale"] = scale.to(torch.float32).contiguous()
    save_file(state, str(path))


def load_channels(path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    from safetensors.torch import load_file

    state = load_file(str(path))
    layers = sorted({int(k.split(".")[0]) for k in state})
    return {i: (state[f"{i}.keep"], state[f"{i}.scale"]) for i in layers}


def apply_channels(model: nn.Module, channels: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Cut each MLP of `model` to its kept channels with their folded scales (`load_channels`' form)."""
    for i, (keep, scale) in channels.items():
        full = torch.zeros(architecture.mlp_width(architecture.layers(model)[i]))
        full[keep] = scale
        architecture.keep_mlp_channels(model, i, keep, scale=full)


def activation_keep_sets(channel_scores: list, keep_fraction: float, min_channels: int = 8) -> dict[int, torch.Tensor]:
    """The cheap alternative to gate training: in each remaining MLP keep the top `keep_fraction` of channels by
    their activation-weighted norm a_c = ‖u_c‖·‖W_down[:, c]‖ (`importance.sublayer_importance`'s "mlp_channels",
    None for a dropped MLP): what a channel writes into the stream. The same fraction per layer, since activation
    scales differ from layer to layer."""
    out = {}
    for i, scores in enumerate(channel_scores):
        if scores is None:
            continue
        score = torch.tensor(scores)
        n_keep = min(score.numel(), max(min_channels, round(keep_fraction * score.numel())))
        out[i] = torch.topk(score, n_keep).indices.sort().values
    return out


def l0_regularizer(gates: ChannelGates, target_keep: float, weight: float, beta: float = 5.0):
    """λ · relu(L0 − target): pushes the expected kept fraction down to the target, not below."""

    def reg(step, total):
        l0 = gates.l0(beta)
        return weight * torch.relu(l0 - target_keep), {"l0": round(l0.item(), 4)}

    return reg
