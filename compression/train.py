"""Retrieval fine-tuning with InfoNCE over in-batch and hard negatives (RepLLaMA / EffiR recipe).

    L = −log  exp(s(q, p⁺)/τ) / Σ_{p ∈ batch positives ∪ hard negatives} exp(s(q, p)/τ)

With `loss="gte"` the denominator also holds the in-batch query–query, query–positive and positive–passage scores
(GTE's improved contrastive loss, Li et al. 2023), so queries and passages are pushed apart from each other too.
(Tried against SmolLM2's collapse, it changed nothing: see reports/smollm2.md.)

s is the cosine of the pooled, normalised embeddings. LoRA through peft (merged afterwards) or full
fine-tuning; optional distillation towards a teacher: its embeddings (1 − cos on every text), its in-batch
scores (KL from the teacher's distribution over the batch's passages to the student's, at the same τ: what a ranking
needs, not where the vectors lie), or its embeddings and every layer's token states (`layers`, below);
checkpoints every few steps and resumes.

    L_layers = (1 − cos(e, e_T)) + 1/L Σ_l  mean over real tokens t of  (1 − cos(z(h_l,t), z(h_T,l,t)))  per side,
    z(h) = (h − μ_T,l) / σ_T,l   (the teacher's per-channel mean and spread over the batch's tokens at layer l)

A cut model keeps its parent's depth (dropped MLPs leave their layers in place) and width, so layer l of one
answers to layer l of the other: every token at every layer is a target, where the pooled vector is one per text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from effir.encoder.model import embed_with_states, tokenize

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"   # the LoRA adapter, saved before it is merged
LORA_TARGETS = {"llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "bert": ["query", "key", "value", "dense"]}


@dataclass
class TrainConfig:
    epochs: float = 1.0
    batch_size: int = 16
    negatives: int = 1             # hard negatives per query
    lr: float = 2e-5
    temperature: float = 0.05
    loss: str = "infonce"          # or "gte": queries and passages are negatives of each other too
    lora: bool = False
    lora_r: int = 32
    lora_alpha: int = 64
    distill_weight: float = 0.0    # weight of the distillation term when a teacher is given
    distill_loss: str = "cosine"   # "scores": KL between the in-batch score rows; "layers": cosine + token states
    contrastive_weight: float = 1.0  # weight of InfoNCE; 0 with a teacher: the student only learns to imitate it
    seed: int = 0
    checkpoint_every: int = 25
    max_steps: int | None = None


LOSSES = ("infonce", "gte")
DISTILL_LOSSES = ("cosine", "scores", "layers")


def info_nce(q: torch.Tensor, p: torch.Tensor, temperature: float, loss: str = "infonce") -> torch.Tensor:
    """q [B, D]; p [B·(1+n), D] laid out as (positive, its n negatives) per query."""
    group = p.size(0) // q.size(0)
    labels = torch.arange(q.size(0), device=q.device) * group
    qp = q @ p.T / temperature
    if loss == "infonce":
        return F.cross_entropy(qp, labels)
    if loss != "gte":
        raise ValueError(f"unknown loss {loss!r}; one of {LOSSES}")
    positives = p[labels]
    self_q = torch.eye(q.size(0), dtype=torch.bool, device=q.device)
    self_p = torch.zeros(q.size(0), p.size(0), dtype=torch.bool, device=q.device)
    self_p[torch.arange(q.size(0)), labels] = True
    z = torch.cat([qp,                                                     # s(q_i, p_j), every passage
                   (q @ q.T / temperature).masked_fill(self_q, -torch.inf),   # s(q_i, q_j), j ≠ i
                   positives @ q.T / temperature,                         # s(q_j, p⁺_i), every query
                   (positives @ p.T / temperature).masked_fill(self_p, -torch.inf)], 1)  # s(p⁺_i, p_j), j ≠ i
    return (torch.logsumexp(z, 1) - qp[torch.arange(q.size(0)), labels]).mean()


def distillation(q, p, tq, tp, temperature: float, loss: str = "cosine") -> torch.Tensor:
    """The student's (q, p) against the teacher's (tq, tp) embeddings of the same batch ("layers": their part)."""
    if loss in ("cosine", "layers"):
        return (1 - F.cosine_similarity(q, tq).mean()) + (1 - F.cosine_similarity(p, tp).mean())
    if loss != "scores":
        raise ValueError(f"unknown distillation loss {loss!r}; one of {DISTILL_LOSSES}")
    teacher = F.log_softmax(tq @ tp.T / temperature, 1)
    return F.kl_div(F.log_softmax(q @ p.T / temperature, 1), teacher, log_target=True, reduction="batchmean")


def layer_distillation(student: tuple, teacher: tuple, mask: torch.Tensor) -> torch.Tensor:
    """Mean over layers of the mean over real tokens of 1 − cos between the student's and the teacher's token states,
    both standardised by the teacher's per-channel mean and spread over the batch's real tokens at that layer.
    Why standardised: SmolLM2's residual stream carries a few massive channels (mean |h| up to 250 in states of
    length 100–700; `bench/layer_distance.py`), which raw cosines agree on while the rest disagree, and whose length
    shrinks the gradient."""
    if len(student) != len(teacher):
        raise ValueError(f"the student has {len(student)} layers and the teacher {len(teacher)}: layer-wise "
                         "distillation needs the cut model's parent as teacher")
    real = mask.bool()
    per_layer = []
    for s, t in zip(student, teacher):
        s, t = s[real].float(), t[real].float()
        mean, spread = t.mean(0), t.std(0, unbiased=False) + 1e-6
        per_layer.append((1 - F.cosine_similarity((s - mean) / spread, (t - mean) / spread, dim=-1)).mean())
    return torch.stack(per_layer).mean()


@torch.no_grad()
def batch_figures(q: torch.Tensor, p: torch.Tensor) -> dict:
    """In-batch top-1 accuracy and the spread of the scores: a collapse (every text one vector) shows as a spread
    near 0 with accuracy at chance, long before an evaluation would."""
    scores = q @ p.T
    group = p.size(0) // q.size(0)
    hits = scores.argmax(1) == torch.arange(q.size(0), device=q.device) * group
    return {"acc": round(hits.float().mean().item(), 3), "score_std": round(scores.std().item(), 4)}


def _batches(examples, cfg: TrainConfig, epoch: int):
    rng = random.Random(cfg.seed * 1000 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    for start in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):  # full batches only
        batch = [examples[i] for i in order[start:start + cfg.batch_size]]
        queries = [e.query for e in batch]
        passages = []
        for e in batch:
            passages.append(e.positive)
            pool = e.negatives or [examples[rng.randrange(len(examples))].positive]
            passages.extend(rng.choice(pool) for _ in range(cfg.negatives))
        yield queries, passages


def run_key(cfg: TrainConfig, examples, spec) -> str:
    """What a checkpoint must have been made from to be resumed: config, training data and starting model."""
    from effir.encoder.model import model_fingerprint

    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for e in examples:
        h.update(json.dumps([e.query, e.positive, e.negatives]).encode())
    h.update(model_fingerprint(spec).encode())
    return h.hexdigest()[:16]


def _save_checkpoint(path: Path, state: dict) -> None:
    """Written beside and renamed over: a kill mid-write leaves the previous checkpoint whole."""
    from effir.core.files import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def wrap_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    from effir.encoder import architecture

    targets = LORA_TARGETS[architecture.family(model)]
    return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                            target_modules=targets, bias="none"))


def train(model, tokenizer, spec, examples, cfg: TrainConfig, work: str | Path, teacher=None, params=None,
          regularizer=None, device="cpu", desc: str = "train"):
    """Fine-tune `model` in place (LoRA merged back); returns (model, log). `params`: train only these
    (e.g. the slimming gates); `regularizer(step) -> (loss, figures)` is added to InfoNCE."""
    if not cfg.contrastive_weight and (teacher is None or not cfg.distill_weight):
        # e.g. a distillation config reused for gate training without its teacher: only the regularizer would move
        raise ValueError("contrastive_weight 0 without a teacher and a distill_weight: no loss to learn from")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.lora and params is None:
        model = wrap_lora(model, cfg)
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = len(examples) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(examples)} examples are fewer than one batch of {cfg.batch_size}")
    total = int(steps_per_epoch * cfg.epochs)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, (total - s) / total))
    ckpt_path, log_path = work / "checkpoint.pt", work / "log.jsonl"
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    key = run_key(cfg, examples, spec)
    step = 0
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        if ckpt.get("key") == key and "rng" in ckpt and set(ckpt["trainable"]) == set(trainable):
            with torch.no_grad():
                for n, t in ckpt["trainable"].items():
                    trainable[n].copy_(t)
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng"])  # dropout masks continue as if never stopped
            step = ckpt["step"]
        else:
            logger.warning("%s was made from another config, data or model (or holds no random state): training "
                           "starts afresh", ckpt_path)
    if log_path.exists():  # keep the log in step with the checkpoint: lines past it were never checkpointed
        kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        log_path.write_text("".join(line + "\n" for line in kept))
    pad = tokenizer.pad_token_id
    by_layers = teacher is not None and bool(cfg.distill_weight) and cfg.distill_loss == "layers"
    model.train()
    bar = tqdm(total=total, initial=step, desc=desc, unit="step")
    log = open(log_path, "a")
    done = step
    epoch = 0
    while done < total:
        for i, (queries, passages) in enumerate(_batches(examples, cfg, epoch)):
            global_step = epoch * steps_per_epoch + i
            if global_step < done:
                continue  # resumed: these batches were trained before the crash
            if done >= total:
                break
            q_ids, p_ids = tokenize(tokenizer, spec, queries, "query"), tokenize(tokenizer, spec, passages, "passage")
            q, q_states, q_mask = embed_with_states(model, q_ids, pad, spec, device, states=by_layers)
            p, p_states, p_mask = embed_with_states(model, p_ids, pad, spec, device, states=by_layers)
            contrastive = info_nce(q, p, cfg.temperature, cfg.loss)
            loss = cfg.contrastive_weight * contrastive
            figures = {"info_nce": round(contrastive.item(), 4), **batch_figures(q, p)}
            if teacher is not None and cfg.distill_weight:
                (tq, tq_states, _), (tp, tp_states, _) = (teacher.forward_states(q_ids, states=by_layers),
                                                          teacher.forward_states(p_ids, states=by_layers))
                d = distillation(q, p, tq, tp, cfg.temperature, cfg.distill_loss)
                if by_layers:
                    layers = (layer_distillation(q_states, tq_states, q_mask)
                              + layer_distillation(p_states, tp_states, p_mask))
                    figures["distill_layers"] = round(layers.item(), 4)
                    d = d + layers
                loss = loss + cfg.distill_weight * d
                figures["distill"] = round(d.item(), 4)
            if regularizer is not None:
                reg, reg_figures = regularizer(done, total)
                loss = loss + reg
                figures.update(reg_figures)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            done += 1
            figures = {"step": done, "loss": round(loss.item(), 4), "lr": scheduler.get_last_lr()[0], **figures}
            log.write(json.dumps(figures) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{figures['loss']:.3f}")
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == total:
                _save_checkpoint(ckpt_path, {"step": done, "key": key, "config": asdict(cfg),
                                             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                             "rng": torch.get_rng_state(),
                                             "trainable": {n: t.detach().clone() for n, t in trainable.items()}})
        epoch += 1
    bar.close()
    log.close()
    model.eval()
    if cfg.lora and hasattr(model, "merge_and_unload"):
        model.save_pretrained(work / ADAPTER_DIR)
        model = model.merge_and_unload()
    for p in model.parameters():
        p.requires_grad_(False)
    history = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    return model, history
