"""Sublayer importance (EffiR / LLM-Drop): S_l = 1 − cos(x_l, x_l + F_l(x_l)).

x_l is the residual stream entering sublayer l and F_l includes its pre-norm, so for pre-norm (LLaMA) layers
`x_l + F_l(x_l)` is simply the stream leaving it. For post-norm (BERT) layers it is the sum before the LayerNorm.
Scores are averaged over every real (non-padding) token of a calibration set, separately for attention and MLP.

The same pass scores each MLP's intermediate channels by their activation-weighted norm, a_c = ‖u_c‖·‖W_down[:, c]‖
(u the input of the output projection over the calibration tokens): how much channel c writes into the stream.
Compression to a budget (`plan.py`) shares a sublayer's S among its channels in proportion to a_c.

S_l is local: it scores each sublayer in the full model, alone. What a cut does to the output is measured by the
output drift of a set S of removed MLP sublayers,

    D(S) = mean over real tokens of 1 − cos(h(x), h_S(x)),   h the last hidden states (what pooling reads),

and a greedy order S_{k+1} = S_k ∪ {argmin_l D(S_k ∪ {l})} (`greedy_mlp_drift`). Where it was measured, drops follow
that order and a sublayer's cost is its marginal drift D(S_k) − D(S_{k−1}) (`mlp_ranking`, `mlp_costs`).
`OutputDrift` measures D for any cut, width included (each kept MLP cut to its kept channels): what `plan.py`
measures each candidate plan by with `--plan-by drift`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effir.compression.slim import channels_kept
from effir.core.errors import EffirError
from effir.core.models import ModelSpec
from effir.encoder import architecture
from effir.encoder.model import pad_batch, tokenize


class _Accumulator:
    def __init__(self, n_layers: int):
        self.sum = {"attn": torch.zeros(n_layers, dtype=torch.float64), "mlp": torch.zeros(n_layers, dtype=torch.float64)}
        self.channel_sq: dict[int, torch.Tensor] = {}
        self.count = 0
        self.mask = None

    def add(self, kind: str, layer: int, x: torch.Tensor, y: torch.Tensor):
        cos = F.cosine_similarity(x.float(), y.float(), dim=-1)  # [B, T]
        self.sum[kind][layer] += ((1.0 - cos) * self.mask).sum().double().cpu()

    def add_channels(self, layer: int, u: torch.Tensor):
        sq = (u.float().square() * self.mask.unsqueeze(-1)).sum((0, 1)).double().cpu()
        self.channel_sq[layer] = self.channel_sq.get(layer, 0) + sq


def _hidden(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def sublayer_importance(model, tokenizer, texts: list[str], max_length: int = 256, batch_size: int = 8,
                        spec: ModelSpec | None = None, device="cpu", progress=None) -> dict:
    """{"attn": [S per layer], "mlp": [S per layer], "mlp_channels": [a_c per channel per layer]} (None for
    sublayers already dropped); texts tokenised as the encoder tokenises passages for `spec`."""
    spec = spec or ModelSpec(name="", path="")
    blocks = architecture.layers(model)
    acc = _Accumulator(len(blocks))
    fam = architecture.family(model)
    state: dict[int, dict[str, torch.Tensor]] = {}
    hooks = []
    for i, layer in enumerate(blocks):
        def pre(mod, args, kwargs, i=i):
            state[i] = {"x": _hidden(args, kwargs)}

        hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        if fam == "llama":
            # pre-norm: the MLP's norm reads h = x + Attn(x); the layer returns h + MLP(norm(h))
            def attn_done(mod, args, i=i):
                state[i]["h"] = args[0]
                acc.add("attn", i, state[i]["x"], args[0])

            def mlp_done(mod, args, kwargs, out, i=i):
                acc.add("mlp", i, state[i]["h"], _first(out))

            hooks.append(layer.post_attention_layernorm.register_forward_pre_hook(attn_done))
            hooks.append(layer.register_forward_hook(mlp_done, with_kwargs=True))
        else:
            # post-norm: score x + F(x) before the LayerNorm, F the output projection's result
            if not architecture.attn_is_dropped(layer):
                hooks.append(layer.attention.output.dense.register_forward_hook(
                    lambda mod, args, out, i=i: acc.add("attn", i, state[i]["x"], state[i]["x"] + out)))
                hooks.append(layer.attention.register_forward_hook(
                    lambda mod, args, out, i=i: state[i].__setitem__("h", _first(out))))
            else:
                state_h = lambda mod, args, out, i=i: state[i].__setitem__("h", _first(out))  # noqa: E731
                hooks.append(layer.attention.register_forward_hook(state_h))
            if not architecture.mlp_is_dropped(layer):
                hooks.append(layer.output.dense.register_forward_hook(
                    lambda mod, args, out, i=i: acc.add("mlp", i, state[i]["h"], state[i]["h"] + out)))
    for i, layer in enumerate(blocks):
        if not architecture.mlp_is_dropped(layer):
            _, out_proj = architecture.mlp_linears(layer)
            hooks.append(out_proj.register_forward_pre_hook(lambda mod, args, i=i: acc.add_channels(i, args[0])))
    try:
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            ids = tokenize(tokenizer, spec, batch, "passage", max_length)
            input_ids, mask = pad_batch(ids, tokenizer.pad_token_id, device)
            acc.mask = mask.float()
            acc.count += int(mask.sum())
            model(input_ids=input_ids, attention_mask=mask)
            if progress is not None:
                progress.update(len(batch))
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for kind, dropped in (("attn", architecture.attn_is_dropped), ("mlp", architecture.mlp_is_dropped)):
        out[kind] = [None if dropped(layer) else round(float(acc.sum[kind][i] / acc.count), 6)
                     for i, layer in enumerate(blocks)]
    out["mlp_channels"] = [_channel_scores(layer, acc.channel_sq.get(i)) for i, layer in enumerate(blocks)]
    out["tokens"] = acc.count
    out["texts"] = len(texts)
    return out


def _channel_scores(layer, sq: torch.Tensor | None) -> list[float] | None:
    """a_c = ‖u_c‖ · ‖W_down[:, c]‖ for every intermediate channel of a layer's MLP (None if dropped)."""
    if sq is None:
        return None
    _, out_proj = architecture.mlp_linears(layer)
    a = sq.sqrt() * out_proj.weight.detach().double().cpu().norm(dim=0)
    return [float(f"{x:.4g}") for x in a.tolist()]


def drift_sum(hidden: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Σ over real tokens of 1 − cos(h, h_ref): the numerator of the output drift D (tokens on the last axis but one)."""
    d = 1 - F.cosine_similarity(hidden.float(), reference.float(), dim=-1)
    return float((d * mask).sum() if mask is not None else d.sum())


class OutputDrift:
    """D(S) against the model as it is now, on fixed texts: `drift(removed)` with the MLP sublayers `removed`
    dropped, and, given `keep` ({layer: kept channels}), those MLPs also cut to their kept channels."""

    def __init__(self, model, tokenizer, texts: list[str], max_length: int, batch_size: int = 8,
                 spec: ModelSpec | None = None, device="cpu"):
        spec = spec or ModelSpec(name="", path="")
        self.model = model
        self.batches = [pad_batch(tokenize(tokenizer, spec, texts[s:s + batch_size], "passage", max_length),
                                  tokenizer.pad_token_id, device) for s in range(0, len(texts), batch_size)]
        self.masks = [mask.float() for _, mask in self.batches]
        self.tokens = sum(float(m.sum()) for m in self.masks)
        with torch.no_grad():
            self.reference = self._last_hidden()

    def _last_hidden(self) -> list[torch.Tensor]:
        return [self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float() for ids, mask in self.batches]

    @torch.no_grad()
    def __call__(self, removed: list[int], keep: dict[int, torch.Tensor] | None = None) -> float:
        with architecture.mlps_dropped(self.model, removed), channels_kept(self.model, keep or {}):
            hidden = self._last_hidden()
        return sum(drift_sum(h, r, m) for h, r, m in zip(hidden, self.reference, self.masks)) / self.tokens


@torch.no_grad()
def greedy_mlp_drift(model, tokenizer, texts: list[str], steps: int, max_length: int = 128, batch_size: int = 8,
                     spec: ModelSpec | None = None, device="cpu", progress=None) -> dict:
    """The greedy drop order of `steps` MLP sublayers by output drift D(S) (module docstring).

    {"order": [l_1, ...], "drift": [D(S_1), ...], "next": {l: D(S ∪ {l}) for every MLP still left after the
    last step}, "texts", "tokens"}. Costs one forward pass per candidate per step: sum_{k<steps} (L − k) passes."""
    present = [i for i, layer in enumerate(architecture.layers(model)) if not architecture.mlp_is_dropped(layer)]
    if steps > len(present):
        raise EffirError(f"cannot order {steps} MLP sublayers: only {len(present)} remain")
    drift = OutputDrift(model, tokenizer, texts, max_length, batch_size, spec, device)
    order, curve, candidates = [], [], {}
    for _ in range(steps):
        candidates = {}
        for layer in (i for i in present if i not in order):
            candidates[layer] = round(drift(order + [layer]), 6)
            if progress is not None:
                progress.update(1)
        best = min(candidates, key=candidates.get)
        order.append(best)
        curve.append(candidates.pop(best))
    if steps == 0:
        candidates = {i: round(drift([i]), 6) for i in present}
    return {"order": order, "drift": curve, "next": {str(i): d for i, d in candidates.items()},  # JSON's keys
            "texts": len(texts), "tokens": int(drift.tokens)}


def greedy_passes(layers_left: int, steps: int) -> int:
    """Forward passes over the drift texts that `greedy_mlp_drift` makes."""
    return sum(layers_left - k for k in range(steps)) or layers_left


def mlp_ranking(scores: dict) -> list[int]:
    """The MLP sublayers still present, the first to drop first: the greedy drift order where `analyze
    --drift-steps` measured it (then the rest by their drift as the next drop), else ascending S_l."""
    greedy = scores.get("mlp_drift")
    if greedy:
        return greedy["order"] + sorted((int(i) for i in greedy["next"]), key=lambda i: greedy["next"][str(i)])
    return [i for _, i in sorted((s, i) for i, s in enumerate(scores["mlp"]) if s is not None)]


def mlp_costs(scores: dict) -> list[float | None]:
    """What removing each MLP sublayer costs, on one scale for the plan: its marginal drift along the greedy order
    where measured (the rest: their drift as the next drop, beyond the last step), else S_l."""
    greedy = scores.get("mlp_drift")
    if not greedy:
        return scores["mlp"]
    costs: list[float | None] = [None] * len(scores["mlp"])
    before = 0.0
    for layer, d in zip(greedy["order"], greedy["drift"]):
        costs[layer], before = d - before, d
    for layer, d in greedy["next"].items():
        costs[int(layer)] = d - before
    return costs


def mlp_to_drop(scores: dict, k: int) -> list[int]:
    """The k MLP sublayers to drop, in layer order (`mlp_ranking`'s first k)."""
    ranking = mlp_ranking(scores)
    if k > len(ranking):
        raise EffirError(f"cannot drop {k} sublayers: only {len(ranking)} remain")
    return sorted(ranking[:k])


def least_important(scores: list, k: int) -> list[int]:
    """Indices of the k lowest scores among sublayers still present."""
    ranked = sorted((s, i) for i, s in enumerate(scores) if s is not None)
    if k > len(ranked):
        raise EffirError(f"cannot drop {k} sublayers: only {len(ranked)} remain")
    return sorted(i for _, i in ranked[:k])


def plot_importance(scores: dict, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(scores["mlp"])
    x = np.arange(n)
    fig, ax = plt.subplots(figsize=(max(6, n * 0.35), 3.6))
    for off, kind, color in ((-0.2, "attn", "tab:blue"), (0.2, "mlp", "tab:orange")):
        vals = [v if v is not None else 0.0 for v in scores[kind]]
        ax.bar(x + off, vals, width=0.4, label="attention" if kind == "attn" else "MLP", color=color)
    ax.set_xlabel("layer")
    ax.set_ylabel("importance  1 − cos(x, x + F(x))")
    ax.set_xticks(x)
    ax.set_title(title or "sublayer importance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
