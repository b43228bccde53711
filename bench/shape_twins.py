"""Random-weight twins of committed systems, for timing where their weights cannot go.

Encoding speed depends on a model's shapes (which sublayers are there, how wide each MLP is), the tokenizer and the
encoding settings, not on its weight values. A twin has all of those from the artefact's manifest and the base's
config and tokenizer, with seeded random weights. The device machine takes 64 MiB of working tree and has no
network, so SmolLM2's weights (93 MB GGUF, 540 MB fp32) cannot reach it; the manifests (kilobytes) and the base's
config and tokenizer (3.5 MB) can, and `effir bench --speed-only` then times the twins there like any model folders.
Twins say nothing about quality: their embeddings are noise.

    .venv/bin/python bench/shape_twins.py --base ~/.cache/effir/models/smollm2-135m \\
        --artefact smollm2-ft=models/smollm2-ft --artefact smollm2-effir-2x=models/smollm2-effir-2x --out runs/twins
    .venv/bin/effir bench --speed-only --dataset ../shared/data/beir/scifact --reference smollm2-ft --control \\
        --systems smollm2-ft=runs/twins/smollm2-ft,smollm2-effir-2x=runs/twins/smollm2-effir-2x --out runs/twin-speed
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def twin(base: str, manifest: dict, out: Path, seed: int = 0):
    """The architecture `manifest` records (dropped sublayers, MLP widths) with random weights, saved at `out`."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from effir.compression.folder import save_model_folder
    from effir.core.models import ModelSpec, resolve
    from effir.encoder import architecture

    torch.manual_seed(seed)
    net = AutoModel.from_config(AutoConfig.from_pretrained(base), dtype=torch.float32)
    architecture.apply_structure(net, dropped_mlp=manifest["dropped_mlp"], dropped_attn=manifest["dropped_attn"],
                                 mlp_widths=manifest.get("mlp_widths") or None)
    spec = ModelSpec(**{**resolve(base).__dict__, **manifest["encoding"]})
    return save_model_folder(net, AutoTokenizer.from_pretrained(base), spec, out,
                             shape_twin_of=manifest["system"], weights="random (shapes only)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="folder with the base model's config.json and tokenizer")
    ap.add_argument("--artefact", action="append", required=True, metavar="NAME=FOLDER",
                    help="a system's artefact folder (only its manifest.json is read); repeatable")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    for item in args.artefact:
        name, _, folder = item.partition("=")
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        spec = twin(args.base, manifest, args.out / name)
        print(f"{name}: {len(spec.dropped_mlp)} MLPs dropped, widths "
              f"{sorted(set(spec.mlp_widths.values())) or 'full'} -> {spec.path}")


if __name__ == "__main__":
    main()
