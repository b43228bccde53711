"""Load a model folder, full or compressed, the same way; encode texts into vectors."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from effir.core.device import dtype_name, pick_device, pick_dtype
from effir.core.models import ModelSpec
from effir.encoder import architecture
from effir.encoder.pooling import pool

logger = logging.getLogger(__name__)


def _state_dict_files(folder: Path) -> list[Path]:
    """Hugging Face's weight files (model.safetensors, model-0000N-of-0000M.safetensors); the pieces other steps
    keep beside them (a predictor, kept channels) are theirs to load."""
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors weights")
    return files


def _load_compressed(spec: ModelSpec):
    """Build the architecture from config.json, remove / resize sublayers as recorded, then load the weights."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    folder = Path(spec.path)
    config = AutoConfig.from_pretrained(folder)
    model = AutoModel.from_config(config, dtype=torch.float32)
    architecture.apply_structure(model, spec.dropped_mlp, spec.dropped_attn, spec.mlp_widths, spec.low_rank)
    expected = model.state_dict()
    prefix = getattr(model, "base_model_prefix", "") + "."
    state = {}
    for file in _state_dict_files(folder):
        for key, tensor in load_file(file).items():
            if key not in expected and key.startswith(prefix) and key[len(prefix):] in expected:
                key = key[len(prefix):]  # a *ForCausalLM checkpoint read into the base model
            state[key] = tensor
    dropped = [f"layers.{i}." for i in (*spec.dropped_mlp, *spec.dropped_attn)]
    unexpected = [k for k in state if k not in expected and not k.startswith("lm_head")
                  and not any(d in k for d in dropped)]
    missing = [k for k in expected if k not in state]
    if missing or unexpected:
        raise ValueError(f"{folder}: weights do not match the recorded structure; "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    return model


VARIANT_GROUP = "effir.model_variants"


def runtime_variants(spec: ModelSpec) -> list:
    """The `apply(model, spec, device) -> model` functions a folder's effir.json asks for (quantise, run
    contextually sparse), in name order. The stages that make such folders register them as `effir.model_variants`
    entry points (the key is the effir.json field), so the encoder imports none of their code, and only what a
    folder asks for is loaded."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=VARIANT_GROUP)}
    if not found:
        raise RuntimeError(f"no `{VARIANT_GROUP}` entry points: effir is not installed (pip install -e .)")
    return [found[name].load() for name in sorted(found) if spec.extra.get(name)]


def load_model(spec: ModelSpec, device: str | None = None, dtype: str | None = None, align_widths: bool = False):
    """(model in eval mode on device, tokenizer). Same call for a registry model, a compressed folder, a hub id.
    `align_widths` (to encode, not to train or cut further): slimmed MLPs zero-padded to a multiple of
    `architecture.WIDTH_MULTIPLE` channels, the same outputs faster; skipped where a runtime variant reads the
    recorded widths (`needs_recorded_widths`)."""
    from transformers import AutoModel, AutoTokenizer

    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    if spec.is_compressed:
        model = _load_compressed(spec)
    else:
        model = AutoModel.from_pretrained(spec.path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(spec.path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device=device, dtype=torch_dtype).eval()
    variants = runtime_variants(spec)
    if align_widths and not any(getattr(apply, "needs_recorded_widths", False) for apply in variants):
        padded = architecture.align_mlp_widths(model)
        if padded:
            logger.info("%s: %d MLPs zero-padded to a multiple of %d channels (exact; faster matrix products)",
                        spec.name, len(padded), architecture.WIDTH_MULTIPLE)
    for apply in variants:
        model = apply(model, spec, device)
    return model, tokenizer


def model_fingerprint(spec: ModelSpec) -> str:
    """Identifies weights + encoding settings without reading multi-GB files in full."""
    h = hashlib.sha256(json.dumps(spec.encoding_settings(), sort_keys=True).encode())
    h.update(json.dumps([sorted(spec.dropped_mlp), sorted(spec.dropped_attn), sorted(spec.mlp_widths.items()),
                         sorted(spec.low_rank.items())]).encode())
    folder = Path(spec.path)
    if folder.is_dir():
        for file in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.json")):
            size = file.stat().st_size
            h.update(f"{file.name}:{size}".encode())
            with open(file, "rb") as f:  # head, middle and tail of each file
                for offset in (0, max(0, size // 2 - (1 << 19)), max(0, size - (1 << 20))):
                    f.seek(offset)
                    h.update(f.read(1 << 20))
    else:
        h.update(spec.path.encode())
    return h.hexdigest()[:16]


def tokenize(tokenizer, spec: ModelSpec, texts: list[str], side: str = "passage",
             max_length: int | None = None) -> list[list[int]]:
    """The one tokenisation, for encoding, training and calibration alike: the side's prefix, truncation to the
    side's maximum length (or `max_length`), and the EOS token appended when the model pools it."""
    prefix = spec.query_prefix if side == "query" else spec.passage_prefix
    max_len = max_length or (spec.query_max_length if side == "query" else spec.passage_max_length)
    eos = tokenizer.eos_token_id if spec.append_eos else None
    ids = tokenizer([prefix + t for t in texts], add_special_tokens=True, truncation=True,
                    max_length=max_len - (eos is not None))["input_ids"]
    if eos is not None:
        ids = [x if x and x[-1] == eos else x + [eos] for x in ids]
    return ids


def median_lengths(tokenizer, spec: ModelSpec, docs: list[str], queries: list[str]) -> tuple[int, int]:
    """Median tokens per document and per query as the encoder sees them: the lengths the FLOP model uses."""
    import statistics

    return (int(statistics.median(map(len, tokenize(tokenizer, spec, docs, "passage")))),
            int(statistics.median(map(len, tokenize(tokenizer, spec, queries, "query")))))


def pad_batch(ids: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest: (input_ids, attention_mask)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
    return input_ids.to(device), mask.to(device)


def embed_with_states(model, ids: list[list[int]], pad_id: int, spec: ModelSpec, device, states: bool = True):
    """Token ids → (pooled, normalised vectors; every layer's token states, or None; the attention mask): the one
    forward pass shared by encoding and training. The states (after each layer, the last after the final norm)
    are what layer-wise distillation compares."""
    input_ids, mask = pad_batch(ids, pad_id, device)
    # an all-ones mask adds nothing but lets attention take its unmasked fast path when left out
    full = all(len(x) == len(ids[0]) for x in ids)
    out = model(input_ids=input_ids, attention_mask=None if full else mask, output_hidden_states=states)
    vec = pool(out.last_hidden_state, mask, spec.pooling).float()
    vec = F.normalize(vec, dim=-1) if spec.normalize else vec
    return vec, (out.hidden_states[1:] if states else None), mask


def embed(model, ids: list[list[int]], pad_id: int, spec: ModelSpec, device) -> torch.Tensor:
    """Token ids → pooled (and normalised) vectors."""
    return embed_with_states(model, ids, pad_id, spec, device, states=False)[0]


class Encoder:
    """Texts → L2-normalised vectors, in length-sorted batches with dynamic padding."""

    def __init__(self, spec: ModelSpec, device: str | None = None, dtype: str | None = None,
                 max_tokens: int = 8192, model=None, tokenizer=None):
        self.spec = spec
        self.device = pick_device(device)
        if model is None:
            model, tokenizer = load_model(spec, self.device, dtype, align_widths=True)
        self.model, self.tokenizer = model, tokenizer
        self.max_tokens = max_tokens  # padded tokens per batch: bounds memory, lets short texts batch wider

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def precision(self) -> str:
        """What its matrix products run in: the quantisation its folder records, else its weights' dtype."""
        return self.spec.extra.get("quantization") or dtype_name(next(self.model.parameters()).dtype)

    def tokenize(self, texts: list[str], side: str) -> list[list[int]]:
        return tokenize(self.tokenizer, self.spec, texts, side)

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped longest-first so each batch pads to nearly its own length."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        out, cur = [], []
        for i in order:
            width = lengths[cur[0]] if cur else lengths[i]
            if cur and (len(cur) + 1) * width > self.max_tokens:
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

    def forward_ids(self, ids: list[list[int]]) -> torch.Tensor:
        return self.forward_states(ids, states=False)[0]

    @torch.inference_mode()
    def forward_states(self, ids: list[list[int]], states: bool = True):
        """(vectors, every layer's token states or None, mask): `embed_with_states`, as a teacher gives them."""
        return embed_with_states(self.model, ids, self.tokenizer.pad_token_id, self.spec, self.device, states)

    def encode(self, texts: list[str], side: str = "passage", progress=None,
               checkpoint=None) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [N, D] float32 in input order, token counts [N]). A `checkpoint` (the shards' `ShardCheckpoint`)
        gives the batches a stopped run finished and saves them as this one goes; batching is deterministic, so a
        resumed encode runs the same batches as an uninterrupted one and gives the same vectors."""
        ids = self.tokenize(texts, side)
        lengths = [len(x) for x in ids]
        batches = self.batches(lengths)
        shape = (len(texts), self.dim)
        out, done = checkpoint.start(batches, shape) if checkpoint else (np.zeros(shape, np.float32), 0)
        if progress is not None and done:
            progress.update(sum(len(batch) for batch in batches[:done]))
        for n, batch in enumerate(batches[done:], start=done + 1):
            out[batch] = self.forward_ids([ids[i] for i in batch]).cpu().numpy()
            if progress is not None:
                progress.update(len(batch))
            if checkpoint and n < len(batches):
                checkpoint.save(out, n)
        return out, np.asarray(lengths, dtype=np.int32)
