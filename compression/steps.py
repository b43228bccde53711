"""The compression steps as functions over model folders: analyze, drop, train, slim; and the EffiR recipe.

Each step reads a model folder (or registry name), writes a new folder with effir.json, and records what it did.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from effir.compression import importance as imp
from effir.compression.folder import carried_files, save_model_folder
from effir.compression.info import describe
from effir.compression.slim import CHANNELS_FILE
from effir.compression.train import ADAPTER_DIR, TrainConfig, train
from effir.core.data import BeirDataset, read_texts, sample_texts
from effir.core.errors import EffirError
from effir.core.files import write_json
from effir.core.models import resolve
from effir.encoder import architecture
from effir.encoder.model import load_model


def load(model: str, device: str = "cpu", pooling: str | None = None):
    """(spec, model, tokenizer); `pooling` overrides the model's, and the folder a step writes records it."""
    spec = resolve(model, pooling=pooling)
    net, tok = load_model(spec, device=device, dtype="float32")
    return spec, net, tok


def calibration_texts(dataset: str | None = None, texts: str | None = None, n: int = 256, seed: int = 0):
    if texts:
        return read_texts(texts)[:n] if n else read_texts(texts)
    if dataset:
        return sample_texts(BeirDataset(dataset).corpus(), n, seed)
    raise EffirError("give calibration texts: --dataset (samples its corpus) or --texts FILE")


def analyze(model: str, out: str | Path, texts: list[str], max_length: int = 256, batch_size: int = 8,
            device: str = "cpu", drift_steps: int | None = None, drift_texts: int = 16,
            drift_max_length: int = 128) -> dict:
    """Sublayer importance S_l on `texts`; with `drift_steps` (0: drop-one only) also the greedy drop order by
    output drift on the first `drift_texts` of them (`importance.greedy_mlp_drift`)."""
    from tqdm import tqdm

    spec, net, tok = load(model, device)
    with tqdm(total=len(texts), desc="importance", unit="text") as bar:
        scores = imp.sublayer_importance(net, tok, texts, max_length=max_length, batch_size=batch_size,
                                         spec=spec, device=device, progress=bar)
    if drift_steps is not None:
        left = sum(s is not None for s in scores["mlp"])
        with tqdm(total=imp.greedy_passes(left, drift_steps), desc="output drift", unit="pass") as bar:
            scores["mlp_drift"] = imp.greedy_mlp_drift(net, tok, texts[:drift_texts], drift_steps,
                                                       max_length=drift_max_length, batch_size=batch_size,
                                                       spec=spec, device=device, progress=bar)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores["model"] = spec.name
    write_json(out / "importance.json", scores)
    imp.plot_importance(scores, out / "importance.png", title=f"{spec.name}: sublayer importance")
    return scores


def drop(model: str, out: str | Path, scores: dict | None, n_mlp: int = 0, n_attn: int = 0,
         mlp_layers: list[int] | None = None, attn_layers: list[int] | None = None, device: str = "cpu",
         pooling: str | None = None):
    """Remove the n least important MLP (and attention) sublayers, or the listed ones."""
    spec, net, tok = load(model, device, pooling)
    n_layers = net.config.num_hidden_layers
    for flag, count, listed in (("--mlp", n_mlp, mlp_layers), ("--attn", n_attn, attn_layers)):
        if count > n_layers:
            raise EffirError(f"{flag} {count}: the model has {n_layers} layers")
        outside = [i for i in listed or [] if not 0 <= i < n_layers]
        if outside:
            raise EffirError(f"{flag}-layers {outside}: the model's layers are 0..{n_layers - 1}")
    mlp = mlp_layers if mlp_layers is not None else (imp.mlp_to_drop(scores, n_mlp) if n_mlp else [])
    attn = attn_layers if attn_layers is not None else (imp.least_important(scores["attn"], n_attn) if n_attn else [])
    before = describe(net)
    architecture.apply_structure(net, dropped_mlp=mlp, dropped_attn=attn)
    after = describe(net)
    history = spec.extra.get("history", []) + [{"step": "drop", "mlp": mlp, "attn": attn}]
    new = save_model_folder(net, tok, spec, out, history=history,
                            figures={"params_before": before["params"], "params": after["params"],
                                     "params_non_embedding": after["params_non_embedding"],
                                     "flops_per_token": after["flops_per_token"]})
    return new, before, after


def training_examples(dataset: str | None, split: str | None, title_body: list[str], title_body_limit: int,
                      work: Path, hard_negatives: bool = True, negatives_by: str | None = None,
                      passage_max_length: int | None = None):
    """Training pairs; hard negatives are mined only when the trainer draws them (`negatives` > 0): by BM25, or
    by the dense ranking of the model `negatives_by` (documents encoded at `passage_max_length`)."""
    import functools

    from effir.compression import pairs

    negatives_depth = pairs.NEGATIVES_DEPTH if hard_negatives else 0
    mine = functools.partial(pairs.dense_hits, negatives_by, cache=Path(work) / "dense-negatives",
                             passage_max_length=passage_max_length) if negatives_by else None
    # named in the training history
    mined_by = f", negatives by {Path(negatives_by).name}" if negatives_by and negatives_depth else ""
    examples = []
    if dataset and split:
        ds = BeirDataset(dataset)
        items, corpus = pairs.qrels_examples(ds, split)
        examples += pairs.build_examples(items, corpus, work / f"{ds.name}-{split}", negatives_depth,
                                         source=f"{ds.name} {split} qrels{mined_by}", mine=mine)
    for folder in title_body:
        ds = BeirDataset(folder)
        corpus = ds.corpus()
        items = pairs.title_body_examples(corpus, title_body_limit)
        examples += pairs.build_examples(items, corpus, work / f"{ds.name}-titles", negatives_depth, title_body=True,
                                         source=f"{ds.name} title→body{mined_by}", mine=mine)
    if not examples:
        raise ValueError("no training data: give --dataset with --split, and/or --title-body DATASET")
    return examples


def data_sources(examples) -> dict[str, int]:
    """{source: examples from it}, in the order the sources come; {} when no example names its source."""
    from collections import Counter

    return dict(Counter(e.source or "other" for e in examples)) if any(e.source for e in examples) else {}


def _training_spec(spec, passage_max_length):
    """Training may truncate passages shorter than encoding does (cost grows with length)."""
    return replace(spec, passage_max_length=passage_max_length) if passage_max_length else spec


def finetune(model: str, out: str | Path, examples, cfg: TrainConfig, work: str | Path, teacher: str | None = None,
             passage_max_length: int | None = None, device: str = "cpu", pooling: str | None = None):
    from effir.encoder.model import Encoder

    spec, net, tok = load(model, device, pooling)
    teacher_enc = Encoder(resolve(teacher), device=device) if teacher else None
    net, history = train(net, tok, _training_spec(spec, passage_max_length), examples, cfg, work,
                         teacher=teacher_enc, device=device, desc=f"train {spec.name} → {Path(out).name}")
    hist = spec.extra.get("history", []) + [{"step": "train", "config": asdict(cfg), "examples": len(examples),
                                             "data": data_sources(examples),
                                             "passage_max_length": passage_max_length, "teacher": teacher,
                                             **loss_summary(history)}]
    files = carried_files(spec, (CHANNELS_FILE,))
    if cfg.lora:
        files[ADAPTER_DIR] = lambda dst: shutil.copytree(Path(work) / ADAPTER_DIR, dst)
    return save_model_folder(net, tok, spec, out, files=files, history=hist)


def loss_summary(history: list[dict], window: int = 10) -> dict:
    """Mean loss over the first and the last `window` steps of a training log."""
    if not history:
        return {}
    mean = lambda rows: round(sum(r["loss"] for r in rows) / len(rows), 4)  # noqa: E731
    return {"steps_run": history[-1]["step"], "loss_first": mean(history[:window]),
            "loss_last": mean(history[-window:]), "final_loss": history[-1]["loss"]}


def slim(model: str, out: str | Path, examples, reduction: float, cfg: TrainConfig, work: str | Path,
         l0_weight: float = 1.0, passage_max_length: int | None = None, device: str = "cpu",
         pooling: str | None = None, calibration: list[str] = (), teacher: str | None = None):
    """Train the channel gates (model frozen), then cut the MLPs to (1 − reduction) of their width: the channels
    of lowest z across layers, or, with `calibration` texts, in each layer those of least gated activation-weighted
    norm ReLU(z_c)·a_c measured on them (what each channel writes with its learned scale; the same share per layer).
    `teacher`: the gates also learn to imitate it (`cfg.distill_weight`), e.g. the model the cut was made from."""
    from effir.compression.slim import ChannelGates, activation_keep_sets, l0_regularizer
    from effir.encoder.model import Encoder

    spec, net, tok = load(model, device, pooling)
    gates = ChannelGates(net)
    keep = 1.0 - reduction
    net, history = train(net, tok, _training_spec(spec, passage_max_length), examples, cfg, work,
                         teacher=Encoder(resolve(teacher), device=device) if teacher else None,
                         params=gates.parameters(),
                         regularizer=l0_regularizer(gates, keep, l0_weight), device=device, desc=f"slim {spec.name}")
    chosen, how = None, {}
    if calibration:  # the gates are still hooked in, so the channel norms are measured after ReLU(z)
        scores = imp.sublayer_importance(net.eval(), tok, list(calibration), max_length=spec.passage_max_length,
                                         spec=spec, device=device)
        chosen = activation_keep_sets(scores["mlp_channels"], keep)
        how = {"by": "gate-activation", "calibration_texts": len(calibration)}
    return _save_width_cut(spec, net, tok, out, gates.fold(keep, chosen), reduction=reduction, config=asdict(cfg),
                           final_l0=history[-1].get("l0") if history else None, **how)


def _save_width_cut(spec, net, tok, out, channels: dict, **step):
    """The sliced model with its kept channels file, and the slim step (`step` and the widths) in its history."""
    from effir.compression.slim import save_channels

    widths = {i: int(idx.numel()) for i, (idx, _) in channels.items()}
    hist = spec.extra.get("history", []) + [{"step": "slim", **step, "widths": widths}]
    files = {CHANNELS_FILE: lambda path: save_channels(channels, path)}
    return save_model_folder(net, tok, spec, out, files=files, history=hist), widths


def slim_as(model: str, out: str | Path, artefact: str | Path, channels: dict, reduction: float, device: str = "cpu"):
    """`model`, the dropped model a committed system was cut from, cut to that system's kept channels and folded
    scales (`artefact.width_cut`): the same cut, to be trained again (`reduction`: the plan's, for the history)."""
    from effir.compression.slim import apply_channels

    spec, net, tok = load(model, device)
    apply_channels(net, channels)
    return _save_width_cut(spec, net, tok, out, channels, reduction=reduction, by="channels-from",
                           artefact=str(artefact))


def slim_by_activation(model: str, out: str | Path, texts: list[str], reduction: float, device: str = "cpu",
                       pooling: str | None = None):
    """Cut the MLPs to (1 − reduction) of their width by activation-weighted channel norms on `texts`, measured on
    this model (not the one it was cut from): no training (`slim.activation_keep_sets`)."""
    import torch

    from effir.compression.slim import activation_keep_sets

    spec, net, tok = load(model, device, pooling)
    scores = imp.sublayer_importance(net, tok, texts, max_length=spec.passage_max_length, spec=spec, device=device)
    channels = {}
    for i, keep in activation_keep_sets(scores["mlp_channels"], 1.0 - reduction).items():
        architecture.keep_mlp_channels(net, i, keep)
        channels[i] = (keep, torch.ones(len(keep)))
    return _save_width_cut(spec, net, tok, out, channels, reduction=reduction, by="activation",
                           calibration_texts=len(texts))


def typical_lengths(model: str, dataset: str | None, sample: int = 256, seed: int = 0) -> tuple[int, int]:
    """(document, query) tokens per text as the encoder sees them: medians over the dataset's corpus sample and
    queries; without a dataset, the maximum lengths."""
    from transformers import AutoTokenizer

    from effir.encoder.model import median_lengths

    spec = resolve(model)
    if not dataset:
        return spec.passage_max_length, spec.query_max_length
    ds = BeirDataset(dataset)
    return median_lengths(AutoTokenizer.from_pretrained(spec.path), spec, sample_texts(ds.corpus(), sample, seed),
                          list(ds.queries().values()))


def drift_of_plans(model: str, scores: dict, texts: list[str], device: str = "cpu"):
    """measure(plan) -> D of the whole cut on `model` (`importance.OutputDrift` over `texts` at the model's passage
    length): its MLPs dropped, every other MLP cut to its top 1 − r channels by a_c (`slim.activation_keep_sets`,
    the gate-free stand-in for the width step)."""
    from effir.compression.slim import activation_keep_sets

    spec, net, tok = load(model, device)
    drift = imp.OutputDrift(net, tok, texts, spec.passage_max_length, spec=spec, device=device)

    def measure(p) -> float:
        keep = activation_keep_sets(scores["mlp_channels"], 1.0 - p.reduction) if p.reduction else {}
        return drift(p.dropped_mlp, {i: k for i, k in keep.items() if i not in p.dropped_mlp})

    return measure


def plan_cut(model: str, scores: dict, target_speedup: float | None = None, n_drop: int | None = None,
             reduction: float = 0.0, dataset: str | None = None, plan_by: str = "importance", drift_texts: int = 64,
             device: str = "cpu", plan_depth: int | None = None):
    """A `plan.Plan`: the cut reaching `target_speedup` with the least importance removed, or, with `plan_by`
    "drift", the least output drift measured on `drift_texts` of the dataset's corpus, or the one dropping
    `plan_depth` MLP sublayers; or the given cut (with "drift", its drift measured too)."""
    import torch
    from transformers import AutoConfig, AutoModel

    from effir.compression import plan
    from effir.compression.info import flops_by_part

    spec = resolve(model)
    with torch.device("meta"):  # FLOPs need shapes only
        net = AutoModel.from_config(AutoConfig.from_pretrained(spec.path))
    architecture.apply_structure(net, spec.dropped_mlp, spec.dropped_attn, spec.mlp_widths, spec.low_rank)
    doc_len, query_len = typical_lengths(model, dataset)
    doc_parts, query_parts = flops_by_part(net, doc_len), flops_by_part(net, query_len)
    if plan_depth is not None and not target_speedup:
        raise EffirError("--plan-depth picks one of the plans that reach --target-speedup: give --target-speedup")
    measure = None
    if plan_by == "drift":
        if not dataset:
            raise EffirError("--plan-by drift measures each plan on calibration texts: give --dataset")
        measure = drift_of_plans(model, scores, calibration_texts(dataset=dataset, n=drift_texts), device)
    if target_speedup:
        return plan.plan_for_target(scores, doc_parts, query_parts, target_speedup, doc_len, query_len,
                                    measure=measure, depth=plan_depth)
    return plan.plan_for_cut(scores, doc_parts, query_parts, n_drop or 0, reduction, doc_len, query_len, measure)


SLIM_LOSSES = ("infonce", "distill")


def gate_training_config(cfg: TrainConfig, lr: float = 0.05, max_steps: int | None = None,
                         loss: str = "infonce", seed: int | None = None) -> TrainConfig:
    """Self-slimming's gate training, from the recipe's training config: the gates only (no LoRA), their own lr and
    steps, and InfoNCE, as in the paper, even where the last training only imitates a teacher; or ("distill") the
    last training's own loss, so the gates keep what the teacher's imitation needs. `seed`: the gates' own (default
    the training's), so the last training can be repeated with another seed on the same cut."""
    if loss not in SLIM_LOSSES:
        raise ValueError(f"gate-training loss {loss!r}: one of {SLIM_LOSSES}")
    if loss == "distill" and not cfg.distill_weight:
        raise ValueError("gates trained by distillation need a teacher and a distill_weight in the training config")
    weights = {} if loss == "distill" else {"contrastive_weight": 1.0, "distill_weight": 0.0}
    return replace(cfg, lr=lr, lora=False, max_steps=max_steps or cfg.max_steps,
                   seed=cfg.seed if seed is None else seed, **weights)


def effir_recipe(model: str, dataset: str, out: str | Path, drop_fraction: float = 0.5, reduction: float = 0.3,
                 split: str = "train", title_body: list[str] = (), title_body_limit: int = 2000,
                 cfg: TrainConfig | None = None, slim_cfg: TrainConfig | None = None, calibration: int = 256,
                 passage_max_length: int | None = None, device: str = "cpu", target_speedup: float | None = None,
                 importance: str | None = None, pooling: str | None = None, teacher: str | None = None,
                 slim_by: str = "gate", negatives_by: str | None = None, channels_from: str | None = None,
                 plan_by: str = "importance", plan_depth: int | None = None) -> dict:
    """analyze → plan → drop → slim → train (the paper's order); every intermediate folder is kept under `out`.

    The cut is `drop_fraction` of the MLP sublayers and `reduction` of the remaining width, or, with
    `target_speedup`, the plan that reaches it with the least importance removed, or with `plan_by` "drift" the
    least output drift measured, or the one at depth `plan_depth` (`plan.py`). `pooling` overrides
    the model's from the first folder on, so every later step trains and encodes with it. `teacher`: the last
    training also distils from it (`cfg.distill_weight`, `cfg.contrastive_weight`). `slim_by`: "gate" (the paper's
    self-slimming), "activation" (`slim_by_activation`, on the calibration texts) or "gate-activation" (gates
    trained, then the cut by gated activation norms on the calibration texts: `slim`). `negatives_by`: the
    hard negatives of every training come from this model's dense ranking instead of BM25. `channels_from`: a
    committed system cut from `model` by the same plan; its kept channels replace the width step (`slim_as`)."""
    out = Path(out)
    cfg = cfg or TrainConfig()
    if channels_from:  # checked first: a wrong artefact stops before any folder is written
        cut = _committed_cut(model, channels_from)
    slim_cfg = slim_cfg or gate_training_config(cfg)
    if importance:
        scores = json.loads(Path(importance).read_text())
    elif (out / "0-analyze" / "importance.json").exists():
        scores = json.loads((out / "0-analyze" / "importance.json").read_text())
    else:
        scores = analyze(model, out / "0-analyze", calibration_texts(dataset=dataset, n=calibration), device=device)
    n_drop = int(round(drop_fraction * sum(s is not None for s in scores["mlp"])))
    chosen = plan_cut(model, scores, target_speedup, n_drop, reduction, dataset, plan_by, device=device,
                      plan_depth=plan_depth)
    if channels_from:
        _check_same_plan(channels_from, cut, chosen)
    write_json(out / "plan.json", chosen.to_json())
    examples = training_examples(dataset, split, list(title_body), title_body_limit, out / "data",
                                 hard_negatives=cfg.negatives > 0, negatives_by=negatives_by,
                                 passage_max_length=passage_max_length)
    steps = {"drop": str(out / "1-drop")}
    if (out / "1-drop" / "effir.json").exists():  # a rerun resumes, but only the same cut
        made = json.loads((out / "1-drop" / "effir.json").read_text())["dropped_mlp"]
        if sorted(made) != chosen.dropped_mlp:
            raise EffirError(f"{out / '1-drop'}: dropped MLPs {sorted(made)}, but this plan drops "
                             f"{chosen.dropped_mlp} (another importance?): remove {out} or choose another --out")
    else:
        drop(model, out / "1-drop", scores, mlp_layers=chosen.dropped_mlp, device=device, pooling=pooling)
    if chosen.reduction:
        steps["slim"] = str(out / "2-slim")
        made = (out / "2-slim" / "effir.json").exists()
        if channels_from and made:
            _check_same_channels(out / "2-slim", channels_from, cut[1])
        elif channels_from:
            slim_as(steps["drop"], out / "2-slim", channels_from, cut[1], chosen.reduction, device=device)
        elif not made:
            texts = calibration_texts(dataset=dataset, n=calibration) if slim_by != "gate" else []
            if slim_by == "activation":
                slim_by_activation(steps["drop"], out / "2-slim", texts, chosen.reduction, device=device)
            else:
                slim(steps["drop"], out / "2-slim", examples, chosen.reduction, slim_cfg, out / "work-2",
                     passage_max_length=passage_max_length, device=device, calibration=texts,
                     teacher=teacher if slim_cfg.distill_weight else None)
    steps["final"] = str(out / "3-final")
    if not (out / "3-final" / "effir.json").exists():
        finetune(steps.get("slim", steps["drop"]), out / "3-final", examples, cfg, out / "work-3", teacher=teacher,
                 passage_max_length=passage_max_length, device=device)
    width_by = "channels-from" if channels_from else slim_by
    write_json(out / "recipe.json", {"model": model, "dataset": dataset, "plan": chosen.to_json(), "steps": steps,
                                      "train": asdict(cfg), "slim_by": width_by if chosen.reduction else None,
                                      "slim": asdict(slim_cfg) if chosen.reduction
                                      and width_by in ("gate", "gate-activation") else None,
                                      "teacher": teacher, "negatives_by": negatives_by, "channels_from": channels_from})
    return steps


def _committed_cut(model: str, artefact: str) -> tuple[dict, dict, float]:
    """(manifest, kept channels, share of the kept MLPs' width removed) of the committed cut in `artefact`, after
    `artefact.width_cut` has checked that `model` is its base."""
    from effir.compression.artefact import width_cut

    _, net, _ = load(model, "cpu")
    manifest, channels = width_cut(artefact, net)
    full = sum(architecture.mlp_width(architecture.layers(net)[i]) for i in channels)
    return manifest, channels, 1 - sum(keep.numel() for keep, _ in channels.values()) / full


def _check_same_channels(folder: Path, artefact: str, channels: dict) -> None:
    """A rerun resumes from its width step only if that step holds the committed channels."""
    import torch

    from effir.compression.slim import load_channels

    made = load_channels(folder / CHANNELS_FILE) if (folder / CHANNELS_FILE).exists() else {}
    same = made.keys() == channels.keys() and all(
        torch.equal(made[i][0], keep) and torch.equal(made[i][1], scale) for i, (keep, scale) in channels.items())
    if not same:
        raise EffirError(f"{folder}: its kept channels are not {artefact}'s: remove {folder.parent} or choose another "
                         f"--out")


def _check_same_plan(artefact: str, cut: tuple, plan) -> None:
    """The committed cut must be this plan's: the same dropped MLPs and, up to each layer's rounding, the same width."""
    manifest, _, removed = cut
    if not plan.reduction:
        raise EffirError(f"{artefact}: this plan cuts no MLP width, so there is nothing to take its channels for")
    if sorted(manifest["dropped_mlp"]) != plan.dropped_mlp or manifest["dropped_attn"]:
        raise EffirError(f"{artefact}: drops MLPs {sorted(manifest['dropped_mlp'])} (attention "
                         f"{manifest['dropped_attn']}), but this plan drops MLPs {plan.dropped_mlp}: another "
                         f"importance or target? its channels fit only its own cut")
    if abs(removed - plan.reduction) > 0.01:
        raise EffirError(f"{artefact}: its cut removes {removed:.1%} of the MLP width, this plan {plan.reduction:.1%}")
