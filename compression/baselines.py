"""The related methods as steps over model folders (Wanda, SparseGPT, NSVD, contextual sparsity, quantisation):
each reads a folder or registry name and writes a new folder with effir.json, like the EffiR steps do."""

from __future__ import annotations

import json
from pathlib import Path

from effir.compression.folder import inherited, save_model_folder
from effir.compression.info import describe
from effir.compression.steps import load
from effir.core.models import resolve


def sparsify_folder(model: str, out: str | Path, texts: list[str], method: str, ratio: float = 0.5,
                    nm: tuple[int, int] | None = None, max_length: int = 256, device: str = "cpu") -> dict:
    from effir.compression.sparsity import sparsify

    spec, net, tok = load(model, device)
    figures = sparsify(net, tok, texts, method, ratio, nm, max_length=max_length, spec=spec, device=device)
    hist = spec.extra.get("history", []) + [{"step": method, **figures}]
    save_model_folder(net, tok, spec, out, history=hist, sparsity=figures)
    return figures


def _copy_folder(spec, out, history: list, extra_files: dict | None = None, **fields) -> None:
    """A new folder with the same weights as `spec`, effir.json extended with `fields` and the step's history."""
    import shutil

    from effir.compression.shadow import SHADOW_WEIGHTS
    from effir.core.files import atomic_path
    from effir.core.models import EFFIR_JSON

    with atomic_path(out) as tmp:
        shutil.copytree(spec.path, tmp, ignore=shutil.ignore_patterns("*.tmp", SHADOW_WEIGHTS))
        meta = inherited(json.loads((tmp / EFFIR_JSON).read_text()) if (tmp / EFFIR_JSON).exists()
                         else spec.to_effir_json())
        meta.update(fields, made_from=spec.path, history=spec.extra.get("history", []) + history)
        (tmp / EFFIR_JSON).write_text(json.dumps(meta, indent=2) + "\n")
        for name, write in (extra_files or {}).items():
            write(tmp / name)


def quantize_folder(model: str, out: str | Path, method: str, per_channel: bool = False,
                    outlier_ratio: float | None = None, texts: list[str] = ()) -> dict:
    """Copy the folder and record the quantisation; the loader quantises when it loads (CPU int8, CUDA nf4).
    With `outlier_ratio`, the linears whose calibration inputs exceed it (`quantize.outlier_ratios`) stay fp32."""
    spec = resolve(model)
    config = {"per_channel": per_channel, "fp32_linears": []}
    if outlier_ratio is not None:
        from effir.compression.quantize import outlier_ratios

        _, net, tok = load(model, "cpu")
        ratios = outlier_ratios(net, tok, texts, spec=spec)
        config.update(outlier_ratio=outlier_ratio, input_ratio_max=max(ratios.values()),
                      fp32_linears=sorted(name for name, r in ratios.items() if r > outlier_ratio))
    _copy_folder(spec, out, [{"step": "quantize", "method": method, **config}], quantization=method,
                 quantization_config=config)
    return config


def shadow_folder(model: str, out: str | Path, pairs: list[tuple[str, str]], head_keep: float, mlp_keep: float,
                  width: int = 512, epochs: int = 100, predictor_from: str | None = None, batch_size: int = 16,
                  device: str = "cpu") -> dict:
    """Train the contextual-sparsity predictor on `pairs` (or reuse one) and write a folder that runs sparse."""
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from effir.compression import shadow, shadow_targets
    from effir.encoder.model import Encoder

    spec, net, tok = load(model, device)
    if spec.extra.get("shadow"):
        raise ValueError(f"{model} is already contextually sparse; give its dense base model")
    if predictor_from:
        source = resolve(predictor_from)
        settings = source.extra.get("shadow")
        if not settings:
            raise ValueError(f"{predictor_from}: no shadow predictor recorded in its effir.json")
        predictor = shadow.ShadowPredictor(net.config.hidden_size, settings["layout"], settings["width"])
        predictor.load_state_dict(load_file(Path(source.path) / shadow.SHADOW_WEIGHTS))
        figures = {k: v for k, v in settings.items() if k not in ("layout", "head_keep", "mlp_keep", "width")}
        if predictor.layout != [tuple(x) for x in shadow.predictor_layout(net)]:
            raise ValueError(f"{predictor_from}: its predictor was trained for a different model structure")
    else:
        encoder = Encoder(spec, device=device, model=net, tokenizer=tok)
        with tqdm(total=len(pairs), desc="shadow targets", unit="pair") as bar:
            x, y, layout = shadow_targets.importance_targets(net, encoder, pairs, batch_size=batch_size, progress=bar)
        predictor, figures = shadow_targets.train_predictor(x, y, layout, width=width, epochs=epochs)
        figures.update(pairs=len(pairs), epochs=epochs)
    settings = {"layout": [list(x) for x in predictor.layout], "width": predictor.width,
                "head_keep": head_keep, "mlp_keep": mlp_keep, **figures}
    state = {k: v.detach().contiguous() for k, v in predictor.state_dict().items()}
    _copy_folder(spec, out, [{"step": "shadow", "head_keep": head_keep, "mlp_keep": mlp_keep, **figures}],
                 extra_files={shadow.SHADOW_WEIGHTS: lambda path: save_file(state, str(path))}, shadow=settings)
    return settings


def nsvd_folder(model: str, out: str | Path, texts: list[str], keep: float, k1_fraction: float = 0.95,
                max_length: int = 256, device: str = "cpu") -> dict:
    """Factor every block linear to `keep` of its parameters (where that saves FLOPs) with nested whitened SVD."""
    from effir.compression.lowrank import decompose
    from effir.compression.sparsity import collect_inputs

    spec, net, tok = load(model, device)
    before = describe(net)
    linears, grams = collect_inputs(net, tok, texts, max_length=max_length, device=device, hessian=True, spec=spec)
    ranks = decompose(net, grams, linears, keep, k1_fraction)
    after = describe(net)
    figures = {"keep": keep, "k1_fraction": k1_fraction, "factored": len(ranks), "linears": len(linears),
               "params_non_embedding_before": before["params_non_embedding"],
               "params_non_embedding": after["params_non_embedding"], "flops_per_token": after["flops_per_token"]}
    hist = spec.extra.get("history", []) + [{"step": "nsvd", **figures}]
    save_model_folder(net, tok, spec, out, history=hist)
    return figures
