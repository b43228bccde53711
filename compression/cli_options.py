"""The options the `effir compress` commands share, and the group they hang on."""

from __future__ import annotations

import functools
import json

import click

from effir.core.models import POOLINGS
from effir.core.options import friendly_errors

UNIT_HALF_OPEN = click.FloatRange(0, 1, max_open=True)            # a share that may be 0 but not all
UNIT_SHARE_KEPT = click.FloatRange(0, 1, min_open=True)          # a share kept: something, at most all
UNIT_OPEN = click.FloatRange(0, 1, min_open=True, max_open=True)  # a share zeroed: neither none nor all


def parse_ints(value: str | None):
    return [int(x) for x in value.split(",") if x.strip()] if value else None


def calibration_options(f):
    f = click.option("--calibration", default=256, show_default=True, type=click.IntRange(min=1), help="calibration texts")(f)
    f = click.option("--texts", type=click.Path(exists=True), default=None, help="calibration texts file (.jsonl or one per line)")(f)
    return click.option("--dataset", type=click.Path(exists=True), default=None, help="BEIR folder: calibration samples its corpus")(f)


def train_options(f):
    opts = [
        click.option("--split", default="train", show_default=True, help="qrels split of --dataset to train on (never test)"),
        click.option("--title-body", multiple=True, type=click.Path(exists=True), help="label-free title→body pairs from this BEIR corpus (repeatable)"),
        click.option("--title-body-limit", default=2000, show_default=True, help="pairs per --title-body corpus"),
        click.option("--epochs", default=1.0, show_default=True, type=click.FloatRange(0, min_open=True)),
        click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=2),
                     help="queries per step (in-batch negatives need two)"),
        click.option("--negatives", default=1, show_default=True, type=click.IntRange(min=0),
                     help="hard negatives per query (drawn from the top 30 hits that are not positives)"),
        click.option("--negatives-by", default=None,
                     help="mine the hard negatives by this model's dense ranking (e.g. the trained parent of a "
                          "cut) instead of BM25; documents encoded at --passage-max-length"),
        click.option("--lr", default=None, type=float, help="learning rate (default 2e-5 full, 1e-4 LoRA, 0.05 slim gates)"),
        click.option("--temperature", default=0.05, show_default=True, type=click.FloatRange(0, min_open=True)),
        click.option("--loss", type=click.Choice(["infonce", "gte"]), default="infonce", show_default=True,
                     help="gte: the batch's queries and passages are negatives of each other too (GTE's loss)"),
        click.option("--lora", is_flag=True, help="LoRA through peft (merged on save) instead of full fine-tuning"),
        click.option("--lora-r", default=32, show_default=True),
        click.option("--lora-alpha", default=64, show_default=True),
        click.option("--max-steps", type=int, default=None),
        click.option("--seed", default=0, show_default=True),
        click.option("--passage-max-length", type=int, default=None, help="truncate passages during training"),
        click.option("--pooling", type=click.Choice(POOLINGS), default=None,
                     help="train (and thereafter encode) with this pooling instead of the model's"),
        click.option("--work", type=click.Path(), default=None, help="checkpoints and logs (default: OUT.work)"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def train_config(epochs, batch_size, negatives, lr, temperature, loss, lora, lora_r, lora_alpha, max_steps, seed,
                 default_lr):
    from effir.compression.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, negatives=negatives, lr=lr or default_lr,
                       temperature=temperature, loss=loss, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                       max_steps=max_steps, seed=seed)


def distill_options(f):
    opts = [
        click.option("--distill-from", default=None,
                     help="teacher model: adds a term that pulls the student towards it (--distill-loss)"),
        click.option("--distill-weight", default=1.0, show_default=True, type=click.FloatRange(min=0)),
        click.option("--distill-loss", default="cosine", show_default=True,
                     type=click.Choice(["cosine", "scores", "layers"]),
                     help="cosine: 1 − cos(student, teacher) on every text; scores: KL between their in-batch "
                          "query → passage score distributions; layers: cosine plus 1 − cos between every "
                          "layer's token states (a teacher of the same depth and width: the cut's parent)"),
        click.option("--contrastive-weight", default=1.0, show_default=True, type=click.FloatRange(min=0),
                     help="weight of InfoNCE; 0 with --distill-from: learn only to imitate the teacher"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def with_distillation(cfg, distill_from, distill_weight, contrastive_weight, distill_loss):
    """The training config with the loss weights of `distill_options`."""
    if not contrastive_weight and not distill_from:
        raise click.UsageError("--contrastive-weight 0 leaves nothing to learn without --distill-from")
    cfg.contrastive_weight = contrastive_weight
    cfg.distill_weight = distill_weight if distill_from else 0.0
    cfg.distill_loss = distill_loss
    return cfg


def cut_options(f):
    opts = [
        click.option("--drop-fraction", default=0.5, show_default=True, type=UNIT_HALF_OPEN, help="share of MLP sublayers to drop (paper: 16/32)"),
        click.option("--reduction", default=0.3, show_default=True, type=UNIT_HALF_OPEN, help="share of the remaining MLP width to remove"),
        click.option("--target-speedup", type=float, default=None,
                     help="instead: the cut reaching this analytic FLOP ratio on documents with the least importance removed"),
        click.option("--importance", type=click.Path(exists=True), default=None,
                     help="importance.json from `analyze` (default: computed on --dataset)"),
        click.option("--plan-by", type=click.Choice(["importance", "drift"]), default="importance", show_default=True,
                     help="what --target-speedup minimises: the summed importance of what each plan removes, or the "
                          "output drift of each whole plan measured on the model (64 texts of --dataset; about 10 s a "
                          "plan on 2 CPU cores for SmolLM2-135M)"),
        click.option("--plan-depth", type=click.IntRange(min=0), default=None,
                     help="with --target-speedup: drop this many MLP sublayers and cut the least width that reaches "
                          "the target (one of the depths `compress plan` lists), instead of the least-cost plan"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


slim_by_option = click.option(
    "--slim-by", type=click.Choice(["gate", "activation", "gate-activation"]), default="gate", show_default=True,
    help="how the width cut chooses channels: learned L0 gates (the paper's self-slimming); without training, "
         "activation-weighted channel norms on calibration texts of --dataset; or gates trained, then the same "
         "norms measured through them (ReLU(z)·a_c)")


def importance_scores(model, importance, dataset, out):
    from effir.compression.steps import analyze, calibration_texts

    if importance:
        return json.loads(open(importance).read())
    return analyze(model, out, calibration_texts(dataset))


def training_set(out, work, dataset, split, title_body, title_body_limit, hard_negatives=True, negatives_by=None,
                 passage_max_length=None):
    """(work folder, training examples) as `train` and `slim` both read them."""
    from pathlib import Path

    from effir.compression.steps import training_examples

    work = Path(work or f"{out}.work")
    examples = training_examples(dataset, split if dataset else None, list(title_body), title_body_limit, work,
                                  hard_negatives, negatives_by, passage_max_length)
    click.echo(f"{len(examples)} training examples", err=True)
    return work, examples


def probe_documents(dataset: str, n: int = 20) -> tuple[list[str], list[str]]:
    """(ids, texts) of the first `n` documents of a corpus, in file order: fixed probe texts for artefacts."""
    import itertools

    from effir.core.data import BeirDataset

    docs = list(itertools.islice(BeirDataset(dataset).corpus(), n))
    return [d.docid for d in docs], [d.contents for d in docs]


def model_command(group, name: str, out: bool = True, **kw):
    """A compress subcommand over one model: --model, --out (when it writes a folder), --threads, and bad input
    reported as one line."""

    def decorate(f):
        @functools.wraps(f)
        def run(*args, threads=None, **kwargs):
            from effir.core.device import configure_threads

            configure_threads(threads)
            return f(*args, **kwargs)

        cmd = friendly_errors(run)
        cmd = click.option("--threads", type=int, default=None, help="CPU threads (default: the free cores)")(cmd)
        if out:
            cmd = click.option("--out", required=True, type=click.Path(), help="folder to write")(cmd)
        cmd = click.option("--model", "-m", required=True, help="registry name, model folder or hub id")(cmd)
        return group.command(name, **kw)(cmd)

    return decorate


@click.group("compress")
def compress():
    """Compress a retriever (EffiR: analyze → drop → train → slim → train) and inspect the result."""
