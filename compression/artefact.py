"""A trained system as the small pieces that rebuild it from its base model (what `models/<system>/` holds).

    manifest.json          base model (registry name) and the checksum of its weights, the cut (dropped MLP
                           sublayers, MLP widths), encoding settings, the command that made it, a training summary,
                           figures, and the sha256 of every other file
    adapter/               the LoRA adapter in fp16 (adapter_config.json, adapter_model.safetensors; an adapter
                           over ADAPTER_SHARD_BYTES is split by tensor into adapter_model-00001-of-0000N.safetensors,
                           so that every committed file stays under 20 MB)
    channels.safetensors   kept channel indices and folded scales of every slimmed MLP (slimmed systems only)
    probe.safetensors      embeddings of fixed probe documents by the rebuilt model, with their ids in the manifest

    rebuilt = merge(LoRA, slice(drop(base, D), kept channels, scales))

The base is a model (registry name or folder; its checksum is over its weights) or another artefact folder (rebuilt
first; its checksum is over what fixes its weights: its own base's checksum and the sha256 of each of its weight
files, so the check does not depend on how a machine rounds the LoRA merge, and the parent's figures may be
updated): an uncompressed trained parent that a system was cut from, or a cut that was only trained further (its cut
unchanged, so the child's pieces are its adapter alone, merged on top of the rebuilt cut).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import torch

from effir.compression.folder import save_model_folder
from effir.compression.slim import CHANNELS_FILE, apply_channels, load_channels
from effir.compression.train import ADAPTER_DIR
from effir.core.errors import EffirError
from effir.core.files import atomic_path, sha256_file, write_json
from effir.core.models import ModelSpec, resolve
from effir.encoder import architecture
from effir.encoder.model import Encoder, load_model, model_fingerprint

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PROBE = "probe.safetensors"
ENCODING_KEYS = ("pooling", "query_prefix", "passage_prefix", "query_max_length", "passage_max_length",
                 "append_eos", "normalize")


class ArtefactError(EffirError):
    """A missing, tampered or mismatched artefact file."""


def weights_checksum(model: torch.nn.Module) -> str:
    """sha256 over the state dict's names and fp32 bytes: the same weights give the same sum, whatever file held
    them."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_SHARD_BYTES = 18_000_000  # of tensor data a file: under the 20 MB a committed file may take


def _shards(state: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """The tensors in name order, cut into consecutive groups of at most `limit` bytes (one tensor may exceed it)."""
    groups, size = [{}], 0
    for name in sorted(state):
        nbytes = state[name].numel() * state[name].element_size()
        if groups[-1] and size + nbytes > limit:
            groups, size = groups + [{}], 0
        groups[-1][name], size = state[name], size + nbytes
    return groups


def _shard_name(i: int, n: int) -> str:
    return f"adapter_model-{i:05d}-of-{n:05d}.safetensors"


def _fp16_adapter(src: Path, dst: Path, base: str, shard_bytes: int = ADAPTER_SHARD_BYTES) -> None:
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True)
    state = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(src / ADAPTER_WEIGHTS)).items()}
    shards = _shards(state, shard_bytes)
    for i, shard in enumerate(shards, 1):
        save_file(shard, str(dst / (ADAPTER_WEIGHTS if len(shards) == 1 else _shard_name(i, len(shards)))))
    config = json.loads((src / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base  # not the trainer's local path
    (dst / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _adapter_state(adapter: Path) -> dict[str, torch.Tensor]:
    """The adapter's tensors, from its one weights file or joined from all of its shards."""
    from safetensors.torch import load_file

    if (adapter / ADAPTER_WEIGHTS).exists():
        return load_file(str(adapter / ADAPTER_WEIGHTS))
    shards = sorted(adapter.glob("adapter_model-*-of-*.safetensors"))
    expected = [_shard_name(i, len(shards)) for i in range(1, len(shards) + 1)]
    if not shards or [f.name for f in shards] != expected:
        raise ArtefactError(f"{adapter}: expected the adapter's weights as {ADAPTER_WEIGHTS} or as the shards "
                            f"{expected or ['adapter_model-00001-of-0000N.safetensors']}; found "
                            f"{[f.name for f in shards]}")
    state = {}
    for shard in shards:
        state.update(load_file(str(shard)))
    return state


def _merge_adapter(net: torch.nn.Module, adapter: Path) -> torch.nn.Module:
    """`net` with the LoRA adapter in `adapter` merged into its weights; every adapter tensor must find its place."""
    from peft import LoraConfig, PeftModel, set_peft_model_state_dict

    peft_model = PeftModel(net, LoraConfig.from_pretrained(str(adapter)))
    loaded = set_peft_model_state_dict(peft_model, _adapter_state(adapter))
    missing = [k for k in loaded.missing_keys if "lora_" in k]
    if loaded.unexpected_keys or missing:
        raise ArtefactError(f"{adapter}: the adapter does not fit the model: unexpected "
                            f"{loaded.unexpected_keys[:3]}, missing {missing[:3]}")
    return peft_model.merge_and_unload()


def _files(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): sha256_file(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != MANIFEST}


CUT_KEYS = ("dropped_mlp", "dropped_attn", "mlp_widths")


def _base_model(base: str):
    """(spec, network, tokenizer, checksum) of the model a system was made from; see the module's docstring."""
    if (Path(base) / MANIFEST).exists():
        parent = verify(base)
        spec, net, tok = _rebuilt(Path(base), parent)
        return spec, net, tok, _artefact_checksum(parent)
    spec = resolve(base)
    net, tok = load_model(spec, device="cpu", dtype="float32")
    if spec.is_compressed:
        raise ArtefactError(f"base model {base} is itself compressed; give the model it was made from")
    return spec, net, tok, weights_checksum(net)


def _cut_of(base: str) -> dict:
    """The cut a base artefact carries (nothing dropped or slimmed for a model that is not an artefact)."""
    if not (Path(base) / MANIFEST).exists():
        return {"dropped_mlp": [], "dropped_attn": [], "mlp_widths": {}}
    manifest = json.loads((Path(base) / MANIFEST).read_text())
    return {k: manifest[k] for k in CUT_KEYS}


def _artefact_checksum(manifest: dict) -> str:
    fixed = {k: manifest[k] for k in ("base", "base_sha256", *CUT_KEYS)}
    fixed["files"] = {name: digest for name, digest in manifest["files"].items() if name != PROBE}  # not weights
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()


def _checked_base(folder: Path, manifest: dict):
    """(spec, network, tokenizer) of the base the system in `folder` was made from, after its checksum is checked."""
    base_spec, net, tok, checksum = _base_model(manifest["base"])
    if checksum != manifest["base_sha256"]:
        raise ArtefactError(f"{base_spec.path}: base model `{manifest['base']}` has other weights than the ones "
                            f"{folder / MANIFEST} was made from (sha256 mismatch)")
    return base_spec, net, tok


def _rebuilt(folder: Path, manifest: dict):
    """The system in `folder` (files already verified), assembled on its base after the base's checksum is checked."""
    base_spec, net, tok = _checked_base(folder, manifest)
    net = _assemble(folder, manifest, net)
    return ModelSpec(**{**base_spec.__dict__, **manifest["encoding"]}), net, tok


def _assemble(folder: Path, manifest: dict, net: torch.nn.Module) -> torch.nn.Module:
    """base → dropped sublayers → kept channels with folded scales → merged LoRA adapter. On a base artefact that
    is a cut, its sublayers are already dropped (dropping again changes nothing) and the child has no channels file."""
    architecture.apply_structure(net, dropped_mlp=manifest["dropped_mlp"], dropped_attn=manifest["dropped_attn"])
    if (folder / CHANNELS_FILE).exists():
        apply_channels(net, load_channels(folder / CHANNELS_FILE))
    if (folder / ADAPTER_DIR).exists():
        net = _merge_adapter(net, folder / ADAPTER_DIR)
    return net.eval()


def _encode_probe(spec: ModelSpec, net, tok, texts: list[str]) -> torch.Tensor:
    vectors, _ = Encoder(spec, device="cpu", model=net, tokenizer=tok).encode(texts)
    return torch.from_numpy(vectors)


def verify(folder: str | Path) -> dict:
    """The manifest, after checking that every file it lists is present and unchanged."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise ArtefactError(f"{folder / MANIFEST}: missing; not an effir artefact folder")
    manifest = json.loads((folder / MANIFEST).read_text())
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.exists():
            raise ArtefactError(f"{path}: missing (listed in {folder / MANIFEST})")
        if sha256_file(path) != digest:
            raise ArtefactError(f"{path}: checksum mismatch with {folder / MANIFEST}; the file was changed")
    extra = set(_files(folder)) - set(manifest["files"])
    if extra:
        raise ArtefactError(f"{folder}: files not in its manifest: {sorted(extra)}")
    return manifest


def width_cut(folder: str | Path, model: torch.nn.Module) -> tuple[dict, dict]:
    """(manifest, kept channels with their folded scales) of the slimmed system in `folder`, after checking that
    `model` has the weights of the base it was cut from: to train exactly that cut again (another seed or rank),
    which gate training on another machine reproduces only up to float rounding."""
    folder = Path(folder)
    manifest = verify(folder)
    if not (folder / CHANNELS_FILE).exists():
        raise ArtefactError(f"{folder}: no {CHANNELS_FILE}; that system's MLPs were not slimmed")
    _, base_net, _ = _checked_base(folder, manifest)
    if weights_checksum(base_net) != weights_checksum(model):
        raise ArtefactError(f"{folder} was cut from `{manifest['base']}`; the model to cut has other weights")
    return manifest, load_channels(folder / CHANNELS_FILE)


def rebuild(folder: str | Path, out: str | Path) -> ModelSpec:
    """Rebuild the system in `folder` from its base model into a model folder at `out` (checksums checked first)."""
    folder = Path(folder)
    manifest = verify(folder)
    spec, net, tok = _rebuilt(folder, manifest)
    return save_model_folder(net, tok, spec, out, history=manifest["history"],
                             rebuilt_from={"artefact": str(folder), "base": manifest["base"]})


def export(trained: str | Path, base: str, out: str | Path, probe_ids: list[str], probe_texts: list[str],
           command: str = "", figures: dict | None = None, adapter: str | Path | None = None,
           tolerance: float = 1e-3, shard_bytes: int = ADAPTER_SHARD_BYTES) -> dict:
    """Write `out` from a trained folder: the pieces above, checked by rebuilding and re-encoding the probe texts
    (max |rebuilt − trained| ≤ `tolerance`, the cost of an fp16 adapter)."""
    trained_spec = resolve(str(trained))
    trained_dir = Path(trained_spec.path)
    adapter = Path(adapter) if adapter else trained_dir / ADAPTER_DIR
    if not (adapter / "adapter_config.json").exists():
        raise ArtefactError(f"{adapter}: no LoRA adapter (train with --lora, or give --adapter)")
    _, base_net, tok, base_checksum = _base_model(base)
    history = trained_spec.extra.get("history", [])
    cut = {"dropped_mlp": sorted(trained_spec.dropped_mlp), "dropped_attn": sorted(trained_spec.dropped_attn),
           "mlp_widths": {str(k): v for k, v in sorted(trained_spec.mlp_widths.items())}}
    base_cut = _cut_of(base)
    if any(base_cut.values()) and cut != base_cut:
        # kept channels are indices into the full model's MLPs: a second cut on a cut has no place in the pieces
        raise ArtefactError(f"base artefact {base} is itself compressed and {trained} cuts further; export it with "
                            f"the full model the first cut was made from as --base")
    manifest = {"system": Path(out).name, "base": base, "base_sha256": base_checksum,
                "base_model": trained_spec.extra.get("base_model"), **cut,
                "encoding": {k: getattr(trained_spec, k) for k in ENCODING_KEYS},
                "command": command, "history": history,
                "training": _training_summary(history), "figures": figures or {},
                "probe_ids": probe_ids}
    trained_net, trained_tok = load_model(trained_spec, device="cpu", dtype="float32")
    reference = _encode_probe(trained_spec, trained_net, trained_tok, probe_texts)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _fp16_adapter(adapter, tmp / ADAPTER_DIR, base, shard_bytes)
        if (trained_dir / CHANNELS_FILE).exists() and not any(base_cut.values()):  # else the base's rebuild slices
            shutil.copyfile(trained_dir / CHANNELS_FILE, tmp / CHANNELS_FILE)
        rebuilt = _assemble(tmp, manifest, base_net)
        probe = _encode_probe(trained_spec, rebuilt, tok, probe_texts)
        gap = float((probe - reference).abs().max())
        if gap > tolerance:
            raise ArtefactError(f"{trained}: the rebuilt model differs from the trained one by {gap:.2e} "
                                f"(> {tolerance}) on the probe texts; the artefact would not reproduce it")
        manifest["rebuild_max_abs_diff"] = round(gap, 8)
        from safetensors.torch import save_file

        save_file({"embeddings": probe.contiguous()}, str(tmp / PROBE))
        manifest["files"] = _files(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("exported %s -> %s (rebuild differs by %.2e)", trained, out, gap)
    return manifest


FIGURE_KEYS = ("dataset", "split", "ndcg@10", "recall@100", "mrr@10")


def figures_of(metrics_path: str | Path) -> dict:
    """The figures a manifest records from an evaluation's metrics.json."""
    return _figures(json.loads(Path(metrics_path).read_text()))


def _figures(metrics: dict) -> dict:
    return {k: metrics[k] for k in FIGURE_KEYS if k in metrics}


def record_figures(folder: str | Path, metrics_path: str | Path) -> dict:
    """Write into `folder`'s manifest the figures its rebuilt system scored; its pieces are untouched. The
    metrics must come from a model rebuilt from this folder and unchanged since it was scored."""
    folder, metrics_path = Path(folder), Path(metrics_path)
    manifest = verify(folder)
    metrics = json.loads(metrics_path.read_text())
    scored = Path(metrics.get("model_path", ""))
    made = json.loads((scored / "effir.json").read_text()) if (scored / "effir.json").exists() else {}
    source = (made.get("rebuilt_from") or {}).get("artefact")
    # the history check also refuses folders made before children stopped inheriting `rebuilt_from`
    if source is None or Path(source).resolve() != folder.resolve() or made.get("history") != manifest["history"]:
        raise ArtefactError(f"{metrics_path}: scored {scored}, which was not rebuilt from {folder}")
    if metrics.get("index", {}).get("model_fingerprint") != model_fingerprint(resolve(str(scored))):
        raise ArtefactError(f"{metrics_path}: {scored} has changed since it was scored; evaluate it again")
    figures = _figures(metrics)
    if figures != manifest["figures"]:  # unchanged figures leave the file (and its time, which make reads) alone
        write_json(folder / MANIFEST, {**manifest, "figures": figures})
        logger.info("%s: recorded %s", folder / MANIFEST, figures)
    return {**manifest, "figures": figures}


def _training_summary(history: list) -> dict:
    """What the last training step recorded: its config, data size and loss curve in brief."""
    runs = [h for h in history if h.get("step") == "train"]
    return {k: v for k, v in runs[-1].items() if k != "step"} if runs else {}
