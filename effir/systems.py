"""The systems of a bench run: their labels, how they were trained, and which system each was made from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from effir.core.models import EFFIR_JSON


def safe_name(system: str) -> str:
    return Path(system).name.replace("/", "_") or system


def parse_systems(systems: list[str]) -> tuple[list[tuple[str, str]], dict[str, tuple[str, str]]]:
    """["name=model" | "model" | "bm25+<system>"] -> ([(name, model)] to run, {hybrid name: (its two systems)}).

    A hybrid's halves join the run when not listed themselves; names must be unique (they name the runs' folders)."""
    out, hybrids, wanted = [], {}, []
    for item in systems:
        if "+" in item and "=" not in item:
            halves = item.split("+")
            if len(halves) != 2 or not all(halves):
                raise click.UsageError(f"--systems {item!r}: a hybrid joins two systems, e.g. bm25+minilm")
            names = tuple(safe_name(h) for h in halves)
            hybrids["+".join(names)] = names
            wanted.extend(zip(names, halves))
            continue
        name, sep, model = item.partition("=")
        out.append((name, model) if sep else (safe_name(item), item))
    for name, model in wanted:  # a hybrid's halves run as systems of their own when not listed
        if name not in [n for n, _ in out]:
            out.append((name, model))
    names = [n for n, _ in out] + list(hybrids)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise click.UsageError(f"--systems: two systems named {dupes}; label them, e.g. a=path/one,b=path/two")
    return out, hybrids


def describe_training(spec) -> str:
    """The model's last training, and the steps that changed it afterwards without training (a compression
    applied to a trained parent)."""
    history = spec.extra.get("history", [])
    trained = [i for i, h in enumerate(history) if h.get("step") == "train"]
    if not trained:
        return "none"
    h = history[trained[-1]]
    cfg = h.get("config", {})
    steps = h.get("steps_run") or cfg.get("max_steps") or f"{cfg.get('epochs')} epoch(s)"
    how = f"LoRA r{cfg.get('lora_r')}" if cfg.get("lora") else "full"
    later = [x.get("step") for x in history[trained[-1] + 1:]]
    data = h.get("data") or {}
    sources = f" ({', '.join(f'{name} {n}' for name, n in data.items())})" if data else ""
    return f"{steps} steps, {how}, {h.get('examples')} examples{sources}" + (
        f"; then {', '.join(later)}, untrained" if later else "")


def check_parents(names: list[str], explicit: dict[str, str], option: str = "--parent") -> None:
    """Before any work: every --parent (or --peer) names two systems of the run."""
    role = option.lstrip("-")
    for child, parent in explicit.items():
        if child not in names:
            raise click.UsageError(f"{option} {child}={parent}: {child!r} is not one of the systems {sorted(names)}")
        if parent not in names:
            raise click.UsageError(f"{option} {child}={parent}: the {role} {parent!r} of {child!r} is not in this "
                                   f"run; add it to --systems")


def resolve_parents(rows: list, explicit: dict[str, str]) -> None:
    """Each row's `parent`: the --parent given for it, else the nearest system in the run it was made from. A folder
    rebuilt from a committed artefact (`effir compress rebuild`) stands for that artefact, and was made from the
    artefact's base, so the lineage of systems cut from trained parents is followed through models/ too."""
    by_path = {}
    for r in rows:
        if r.model:
            by_path.update({path: r.name for path in _known_as(r.model)})
    for r in rows:
        r.parent = explicit.get(r.name)
        source = _made_from(r.model) if r.model else None
        while r.parent is None and source:
            r.parent = by_path.get(_canonical(source))
            source = _made_from(source)


def _canonical(path: str) -> str:
    return str(Path(path).resolve()) if Path(path).exists() else path


def _known_as(path: str) -> list[str]:
    """The paths a system's folder answers to: its own, and the artefact it was rebuilt from."""
    rebuilt = _effir_json(path).get("rebuilt_from")
    return [_canonical(path)] + ([_canonical(rebuilt["artefact"])] if rebuilt else [])


def _made_from(path: str) -> str | None:
    """What the folder at `path` was made from: a model folder's effir.json says (a rebuilt one: its artefact's
    base), an artefact's manifest names its base."""
    from effir.compression.artefact import MANIFEST  # lazily: artefact imports torch, and parsing --systems need not

    meta = _effir_json(path)
    if meta:
        return meta["rebuilt_from"]["base"] if meta.get("rebuilt_from") else meta.get("made_from")
    manifest = Path(path) / MANIFEST
    return json.loads(manifest.read_text()).get("base") if manifest.exists() else None


def _effir_json(path: str) -> dict:
    meta = Path(path) / EFFIR_JSON
    return json.loads(meta.read_text()) if meta.exists() else {}
