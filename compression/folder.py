"""Write a model folder: Hugging Face weights + tokenizer + effir.json (structure, encoding, provenance, figures)."""

from __future__ import annotations

import json
from pathlib import Path

from effir.core.files import atomic_path
from effir.core.models import EFFIR_JSON, ModelSpec
from effir.encoder import architecture


def save_model_folder(model, tokenizer, spec: ModelSpec, out: str | Path, files: dict | None = None,
                      **extra) -> ModelSpec:
    """Save `model` (fp32) so that `effir.core.models.resolve(out)` + `load_model` rebuild it exactly.
    `files`: {name: write(path)} for pieces saved beside the weights (kept channels, a LoRA adapter)."""
    import torch

    out = Path(out)
    structure = architecture.structure_of(model)
    new = ModelSpec(**{**spec.__dict__, "name": out.name, "path": str(out),
                       "dropped_mlp": structure["dropped_mlp"], "dropped_attn": structure["dropped_attn"],
                       "mlp_widths": structure["mlp_widths"] if _slimmed(model, structure) else {},
                       "low_rank": structure["low_rank"],
                       "extra": {**inherited(spec.extra), "made_from": spec.path, **extra}})
    new.extra.setdefault("base_model", spec.extra.get("base_model", spec.path))
    with atomic_path(out) as tmp:
        model.to(torch.float32).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / EFFIR_JSON).write_text(json.dumps(new.to_effir_json(), indent=2) + "\n")
        for name, write in (files or {}).items():
            write(tmp / name)
    return new


def inherited(meta: dict) -> dict:
    """What a model made from a folder keeps of its effir.json: all but `rebuilt_from`, which names the artefact
    that folder was rebuilt from and is true only of it (a quantised child of it was not rebuilt from anything)."""
    return {k: v for k, v in meta.items() if k != "rebuilt_from"}


def carried_files(spec: ModelSpec, names: tuple[str, ...]) -> dict:
    """{name: copy} for the files of `spec`'s folder that a step which keeps the structure passes on."""
    import shutil

    folder = Path(spec.path)
    return {n: (lambda dst, src=folder / n: shutil.copyfile(src, dst)) for n in names if (folder / n).exists()}


def _slimmed(model, structure) -> bool:
    full = model.config.intermediate_size
    return any(w != full for w in structure["mlp_widths"].values())
