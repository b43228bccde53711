"""Per-input gathered execution for contextual sparsity: each input runs only its kept attention heads and MLP
channels, their rows / columns gathered into smaller matrices (one set per input, batched with bmm), so the
skipped work is never done. Drop-in replacements for the BERT and LLaMA attention and MLP modules.
"""

from __future__ import annotations

import sys

import torch
from torch import nn


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


class GatheredBertIntermediate(_Gathered):
    def __init__(self, full, selection, layer):
        super().__init__(selection, layer)
        self.full = full

    def forward(self, hidden_states):
        lin = self.full.dense
        return self.full.intermediate_act_fn(gathered_rows(hidden_states, lin.weight, lin.bias, self.kept("mlp")))


class GatheredBertOutput(_Gathered):
    """A BERT output projection (attention's `kind="head_rows"`, the MLP's `kind="mlp"`) on its kept input columns,
    then the residual LayerNorm."""

    def __init__(self, full, selection, layer, kind: str):
        super().__init__(selection, layer)
        self.full, self.kind = full, kind
        self.register_buffer("weight_t", full.dense.weight.detach().t().contiguous(), persistent=False)

    def forward(self, hidden_states, input_tensor):
        y = gathered_columns(hidden_states, self.weight_t, self.full.dense.bias, self.kept(self.kind))
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
