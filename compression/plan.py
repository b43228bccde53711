"""Compression to a budget: how many MLP sublayers to drop and how much of the remaining MLP width to cut so that
the analytic FLOP ratio reaches a target with the least importance removed.

For a plan (D, r) — drop the MLP sublayers D, then cut a share r of the remaining MLP channels —

    FLOPs(D, r) = F − Σ_{l ∈ D} F_mlp(l) − r · Σ_{l ∉ D} F_mlp(l)          (per token, at a stated sequence length)
    ratio(D, r) = F / FLOPs(D, r)
    removed(D, r) = Σ_{l ∈ D} S_l + Σ_{c ∈ C} S_{l(c)} · a_c / Σ_{c' ∈ l(c)} a_c'

F_mlp, F from `info.flops_by_part` (projections, MLP, attention scores); S_l the sublayer importance
1 − cos(x, x + F(x)), or its marginal output drift where `analyze --drift-steps` measured the greedy order; a_c the
channel's activation-weighted norm (`importance.py`); C the r-share of the remaining channels with the least
importance. Every channel of a width-d MLP costs the same FLOPs, so the ratio depends on r alone, whichever channels
self-slimming later removes. For each depth n the first n of the ranking are dropped (`importance.mlp_ranking`, as
`drop` does) and r is the least width cut that reaches the target; the plan with the least importance removed
wins. The target binds on documents (the longer sequence); the query ratio is reported beside it.

`removed` adds costs measured one at a time and shares a sublayer's among its channels by their norms. With
`measure` (`--plan-by drift`) each candidate is instead applied to the model whole and scored by its output drift
(`importance.OutputDrift`: the plan's MLPs dropped, each other MLP cut to its top 1 − r channels by a_c), and the
least drift wins; `depth` (`--plan-depth N`) takes the candidate at that depth instead. Both score a cut before
training. On SmolLM2 they agree (2x: the same plan; 1.5x: the width-only
cut, drift 0.42 against 0.60 for dropping 15 MLPs), and at 1.5x training reversed that order: the 15-MLP cut,
trained the same, scored higher on all three collections measured (reports/llm-planner-drift-2026-12-06/).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from effir.compression.importance import mlp_costs, mlp_to_drop
from effir.core.errors import EffirError


@dataclass
class Plan:
    dropped_mlp: list[int]
    reduction: float                 # share of the remaining MLP channels removed, globally
    importance_removed: float
    doc_flop_ratio: float
    query_flop_ratio: float
    doc_seq_len: int
    query_seq_len: int
    target: float | None = None
    ranking: str = "cosine importance"
    output_drift: float | None = None   # D of the whole cut on the model, where measured (`measure`)
    alternatives: list[dict] | None = None  # the other depths that reach the target, with their costs
    chosen_by: str | None = None            # for a target: the least cost, or the depth asked for

    @property
    def cost(self) -> float:
        """What the planner minimises: the measured drift where there is one, else the summed importance."""
        return self.output_drift if self.output_drift is not None else self.importance_removed

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        drift = f"; output drift {self.output_drift:.4f}" if self.output_drift is not None else ""
        text = (f"drop {len(self.dropped_mlp)} MLP sublayers {self.dropped_mlp}, then cut {self.reduction:.0%} of the "
                f"remaining MLP width: predicted FLOP ratio {self.doc_flop_ratio:.2f}x for documents "
                f"({self.doc_seq_len} tokens), {self.query_flop_ratio:.2f}x for queries ({self.query_seq_len} tokens); "
                f"importance removed {self.importance_removed:.4f} ({self.ranking}){drift}")
        if self.chosen_by:
            text += f"; chosen by {self.chosen_by}"
        for alt in self.alternatives or []:
            drift = f", output drift {alt['output_drift']:.4f}" if alt.get("output_drift") is not None else ""
            text += (f"\n  or drop {alt['n_drop']:2d} and cut {alt['reduction']:.0%}: importance removed "
                     f"{alt['importance_removed']:.4f}{drift}")
        return text


def flop_ratio(parts: dict[int, dict[str, int]], dropped: list[int], reduction: float) -> float:
    """F / FLOPs(D, r) from per-layer, per-part FLOPs (`info.flops_by_part`)."""
    total = sum(sum(p.values()) for p in parts.values())
    dropped_mlp = sum(parts[i]["mlp"] for i in dropped)
    kept_mlp = sum(p["mlp"] for i, p in parts.items() if i not in dropped)
    return total / (total - dropped_mlp - reduction * kept_mlp)


def _channel_costs(scores: dict, kept_layers: list[int], layer_costs: list) -> list[float]:
    """S_l · a_c / Σ a over every channel of the kept MLP sublayers, cheapest first (S_l from `layer_costs`)."""
    channels = scores.get("mlp_channels") or [None] * len(scores["mlp"])
    costs = []
    for i in kept_layers:
        a = channels[i]
        if not a or sum(a) <= 0:  # an importance.json from before channel scores existed
            raise EffirError(f"importance has no channel scores for MLP {i}; rerun `effir compress analyze`")
        total = sum(a)
        costs += [layer_costs[i] * x / total for x in a]
    return sorted(costs)


def _plan(scores: dict, doc_parts: dict, query_parts: dict, n_drop: int, reduction: float, doc_seq_len: int,
          query_seq_len: int, target: float | None = None) -> Plan:
    present = [i for i, s in enumerate(scores["mlp"]) if s is not None]
    dropped = mlp_to_drop(scores, n_drop)
    layer_costs = mlp_costs(scores)
    costs = _channel_costs(scores, [i for i in present if i not in dropped], layer_costs) if reduction else []
    removed = sum(layer_costs[i] for i in dropped) + sum(costs[:int(round(reduction * len(costs)))])
    ranking = "greedy output drift" if scores.get("mlp_drift") else "cosine importance"
    return Plan(dropped, reduction, round(removed, 6), round(flop_ratio(doc_parts, dropped, reduction), 4),
                round(flop_ratio(query_parts, dropped, reduction), 4), doc_seq_len, query_seq_len, target, ranking)


# measure(plan) -> the output drift of the whole cut on the model (`steps.drift_of_plans`)
Measure = Callable[[Plan], float]


def _measured(plan: Plan, measure: Measure | None) -> Plan:
    if measure is not None:
        plan.output_drift = round(measure(plan), 6)
    return plan


def plan_for_cut(scores: dict, doc_parts: dict, query_parts: dict, n_drop: int, reduction: float,
                 doc_seq_len: int, query_seq_len: int, measure: Measure | None = None) -> Plan:
    """The predicted figures of a cut chosen by hand: drop the `n_drop` least important, then `reduction`."""
    return _measured(_plan(scores, doc_parts, query_parts, n_drop, reduction, doc_seq_len, query_seq_len), measure)


def plan_for_target(scores: dict, doc_parts: dict, query_parts: dict, target: float, doc_seq_len: int,
                    query_seq_len: int, max_reduction: float = 0.5, grain: float = 0.01,
                    measure: Measure | None = None, depth: int | None = None) -> Plan:
    """The (D, r) reaching `target`x on documents with the least importance removed, or, with `measure`, the least
    output drift; r on a grid of `grain`. `depth`: instead, the candidate dropping that many MLP sublayers (only it
    is measured). The other candidates are kept in `alternatives`, shallowest first."""
    if target <= 1.0:
        raise EffirError(f"--target-speedup {target}: must be above 1")
    present = [i for i, s in enumerate(scores["mlp"]) if s is not None]
    total = sum(sum(p.values()) for p in doc_parts.values())
    need = total - total / target   # FLOPs per document token to remove
    candidates = []
    for n in range(len(present) + 1):
        dropped = mlp_to_drop(scores, n)
        rest = need - sum(doc_parts[i]["mlp"] for i in dropped)
        kept_mlp = sum(doc_parts[i]["mlp"] for i in present if i not in dropped)
        if rest <= 0:
            reduction = 0.0
        elif kept_mlp:
            reduction = round(math.ceil(rest / kept_mlp / grain - 1e-9) * grain, 6)
        else:
            continue
        if reduction <= max_reduction:
            candidates.append(_plan(scores, doc_parts, query_parts, n, reduction, doc_seq_len, query_seq_len, target))
    if not candidates:
        most = flop_ratio(doc_parts, present, 0.0)
        raise EffirError(f"--target-speedup {target}: no plan reaches {target}x on documents: dropping every MLP "
                         f"sublayer gives {most:.2f}x (attention stays), and width cuts are capped at {max_reduction:.0%}")
    if depth is not None:
        chosen = next((p for p in candidates if len(p.dropped_mlp) == depth), None)
        if chosen is None:
            depths = [len(p.dropped_mlp) for p in candidates]
            raise EffirError(f"--plan-depth {depth}: dropping {depth} MLP sublayers reaches {target}x on documents only "
                             f"with more than {max_reduction:.0%} of the remaining width cut, or there are not "
                             f"{depth}; the depths that reach it: {depths[0]}–{depths[-1]}")
        _measured(chosen, measure)
        chosen.chosen_by = f"--plan-depth {depth}"
    else:
        for p in candidates:
            _measured(p, measure)
        chosen = min(candidates, key=lambda p: p.cost)
        chosen.chosen_by = "least output drift" if measure else "least importance removed"
    chosen.alternatives = [{"n_drop": len(p.dropped_mlp), "reduction": p.reduction,
                            "importance_removed": p.importance_removed, "output_drift": p.output_drift}
                           for p in candidates if p is not chosen]
    return chosen
