"""`effir compress ...`: the EffiR steps (analyze, plan, drop, slim, train, the whole recipe), artefacts (export,
rebuild) and info; `cli_baselines` adds the related methods to the same group."""

from __future__ import annotations

import json
from pathlib import Path

import click

from effir.compression import cli_baselines  # noqa: F401  (registers the related methods' commands)
from effir.compression.cli_options import (
    UNIT_HALF_OPEN,
    calibration_options,
    compress,
    cut_options,
    distill_options,
    importance_scores,
    model_command,
    parse_ints,
    probe_documents,
    slim_by_option,
    train_config,
    train_options,
    training_set,
    with_distillation,
)
from effir.core.options import friendly_errors

__all__ = ["compress", "probe_documents"]


@model_command(compress, "analyze")
@calibration_options
@click.option("--max-length", default=256, show_default=True)
@click.option("--drift-steps", type=click.IntRange(min=0), default=None,
              help="also measure the greedy drop order of this many MLP sublayers by output drift (0: drop-one); "
                   "drops and plans then follow it")
@click.option("--drift-texts", default=16, show_default=True, type=click.IntRange(min=1),
              help="calibration texts the drift is measured on")
@click.option("--drift-max-length", default=128, show_default=True, type=click.IntRange(min=2))
def analyze_cmd(model, out, dataset, texts, calibration, max_length, drift_steps, drift_texts, drift_max_length):
    """Importance of every attention and MLP sublayer: OUT/importance.json and OUT/importance.png."""
    from effir.compression.steps import analyze, calibration_texts

    scores = analyze(model, out, calibration_texts(dataset, texts, calibration), max_length=max_length,
                     drift_steps=drift_steps, drift_texts=drift_texts, drift_max_length=drift_max_length)
    click.echo(f"{'layer':>5} {'attention':>10} {'MLP':>10}")
    for i, (a, m) in enumerate(zip(scores["attn"], scores["mlp"])):
        click.echo(f"{i:>5} {a if a is not None else '-':>10} {m if m is not None else '-':>10}")
    if drift_steps is not None:
        greedy = scores["mlp_drift"]
        click.echo("greedy drop order by output drift: " + ", ".join(
            f"MLP {layer} ({d:.4f})" for layer, d in zip(greedy["order"], greedy["drift"])))
    click.echo(f"-> {out}/importance.json, {out}/importance.png")


@model_command(compress, "drop")
@click.option("--mlp", "n_mlp", default=0, show_default=True, type=click.IntRange(min=0), help="MLP sublayers to drop (least important first)")
@click.option("--attn", "n_attn", default=0, show_default=True, type=click.IntRange(min=0), help="attention sublayers to drop")
@click.option("--mlp-layers", default=None, help="explicit MLP layer indices, e.g. 3,4")
@click.option("--attn-layers", default=None, help="explicit attention layer indices")
@click.option("--importance", type=click.Path(exists=True), default=None, help="importance.json from `analyze`")
@calibration_options
def drop_cmd(model, out, n_mlp, n_attn, mlp_layers, attn_layers, importance, dataset, texts, calibration):
    """Remove the least important sublayers; each becomes an exact identity and its parameters are gone."""
    from effir.compression.steps import analyze, calibration_texts, drop

    scores = None
    if (n_mlp or n_attn) and not (mlp_layers or attn_layers):
        if importance:
            scores = json.loads(Path(importance).read_text())
        else:
            scores = analyze(model, f"{out}.analyze", calibration_texts(dataset, texts, calibration))
    new, before, after = drop(model, out, scores, n_mlp, n_attn, parse_ints(mlp_layers), parse_ints(attn_layers))
    saved = 1 - after["params_non_embedding"] / before["params_non_embedding"]
    click.echo(f"dropped MLP {new.dropped_mlp}, attention {new.dropped_attn}: non-embedding parameters "
               f"{before['params_non_embedding']:,} -> {after['params_non_embedding']:,} (-{saved:.1%}), "
               f"FLOPs/token x{after['flops_per_token'] / before['flops_per_token']:.3f} -> {out}")


@model_command(compress, "train")
@click.option("--dataset", type=click.Path(exists=True), default=None, help="BEIR folder whose qrels --split is the training set")
@train_options
@distill_options
def train_cmd(model, out, dataset, split, title_body, title_body_limit, passage_max_length, pooling, work,
              negatives_by, distill_from, distill_weight, contrastive_weight, distill_loss, **kw):
    """Retrieval fine-tuning: InfoNCE with in-batch and hard negatives (BM25's or a model's; LoRA or full),
    optionally distilled."""
    from effir.compression.steps import finetune

    cfg = with_distillation(train_config(**kw, default_lr=1e-4 if kw["lora"] else 2e-5), distill_from,
                            distill_weight, contrastive_weight, distill_loss)
    work, examples = training_set(out, work, dataset, split, title_body, title_body_limit, cfg.negatives > 0,
                                  negatives_by, passage_max_length)
    new = finetune(model, out, examples, cfg, work, teacher=distill_from, passage_max_length=passage_max_length,
                   pooling=pooling)
    click.echo(f"-> {new.path}")


@model_command(compress, "slim")
@click.option("--dataset", type=click.Path(exists=True), default=None)
@click.option("--reduction", default=0.3, show_default=True, type=UNIT_HALF_OPEN, help="fraction of the remaining MLP width to remove")
@click.option("--l0-weight", default=1.0, show_default=True)
@slim_by_option
@train_options
def slim_cmd(model, out, dataset, reduction, l0_weight, slim_by, split, title_body, title_body_limit,
             passage_max_length, pooling, work, negatives_by, **kw):
    """Self-slimming: learn channel gates with InfoNCE + λ·L0, then cut the MLPs and fold the gates; or, with
    --slim-by activation, keep the channels that add most to the output on calibration texts (no training); or,
    with --slim-by gate-activation, learn the gates, then keep the channels that add most through them."""
    from effir.compression.steps import calibration_texts, slim, slim_by_activation

    if slim_by == "activation":
        new, widths = slim_by_activation(model, out, calibration_texts(dataset=dataset), reduction, pooling=pooling)
    else:
        cfg = train_config(**kw, default_lr=0.05)
        work, examples = training_set(out, work, dataset, split, title_body, title_body_limit, cfg.negatives > 0,
                                      negatives_by, passage_max_length)
        texts = calibration_texts(dataset=dataset) if slim_by == "gate-activation" else []
        new, widths = slim(model, out, examples, reduction, cfg, work, l0_weight=l0_weight,
                           passage_max_length=passage_max_length, pooling=pooling, calibration=texts)
    click.echo(f"MLP widths {widths} -> {new.path}")


@model_command(compress, "plan", out=False)
@click.option("--dataset", type=click.Path(exists=True), default=None,
              help="BEIR folder: calibration texts, and the typical document and query lengths")
@cut_options
@click.option("--out", type=click.Path(), default=None, help="also write the plan (and importance) here")
@click.option("--json", "as_json", is_flag=True)
def plan_cmd(model, dataset, drop_fraction, reduction, target_speedup, importance, plan_by, plan_depth, out, as_json):
    """Print the cut a budget asks for: sublayers dropped, width removed, predicted FLOP ratios; changes nothing."""
    import tempfile

    from effir.compression.steps import plan_cut
    from effir.core.files import write_json

    if not (importance or dataset):
        raise click.UsageError("give --importance FILE, or --dataset to compute it")
    scores = importance_scores(model, importance, dataset, out or tempfile.mkdtemp(prefix="effir-plan-"))
    n_drop = int(round(drop_fraction * sum(x is not None for x in scores["mlp"])))
    chosen = plan_cut(model, scores, target_speedup, n_drop, reduction, dataset, plan_by, plan_depth=plan_depth)
    if out:
        write_json(f"{out}/plan.json", chosen.to_json())
    click.echo(json.dumps(chosen.to_json(), indent=2) if as_json else chosen.describe())


@model_command(compress, "effir")
@click.option("--dataset", required=True, type=click.Path(exists=True))
@cut_options
@click.option("--slim-steps", type=int, default=None, help="gate-training steps of self-slimming (default: as training)")
@click.option("--slim-lr", default=0.05, show_default=True)
@click.option("--slim-loss", type=click.Choice(["infonce", "distill"]), default="infonce", show_default=True,
              help="what the gates learn from: InfoNCE (the paper), or, with --distill-from, imitating the teacher "
                   "by --distill-loss as the last training does")
@click.option("--slim-seed", type=int, default=None,
              help="the gate training's seed (default --seed): another --seed then repeats the last training only")
@slim_by_option
@click.option("--channels-from", type=click.Path(exists=True), default=None,
              help="a committed system (models/<system>) cut from this model by the same plan: train its kept "
                   "channels again instead of choosing the width (--slim-by), e.g. another --seed or --lora-r")
@train_options
@distill_options
def effir_cmd(model, dataset, out, drop_fraction, reduction, target_speedup, importance, plan_by, plan_depth,
              slim_steps, slim_lr, slim_loss, slim_seed, slim_by, channels_from, split, title_body, title_body_limit,
              passage_max_length, pooling, work, negatives_by, distill_from, distill_weight, contrastive_weight,
              distill_loss, **kw):
    """The EffiR recipe: analyze → plan → drop → slim → train, every intermediate folder kept; with
    --distill-from, the last training also imitates that teacher (e.g. the trained model the cut was made from)."""
    from effir.compression.steps import effir_recipe, gate_training_config

    cfg = with_distillation(train_config(**kw, default_lr=1e-4 if kw["lora"] else 2e-5), distill_from,
                            distill_weight, contrastive_weight, distill_loss)
    if slim_loss == "distill" and not distill_from:
        raise click.UsageError("--slim-loss distill needs --distill-from: the gates learn to imitate that teacher")
    ctx = click.get_current_context()
    chosen_width = [f"--{n.replace('_', '-')}" for n in ("slim_by", "slim_steps", "slim_lr", "slim_loss", "slim_seed")
                    if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if channels_from and chosen_width:
        raise click.UsageError(f"--channels-from takes the width cut from {channels_from}; {', '.join(chosen_width)} "
                               f"would choose it")
    slim_cfg = gate_training_config(cfg, slim_lr, slim_steps, slim_loss, slim_seed)
    steps = effir_recipe(model, dataset, out, drop_fraction, reduction, split, title_body, title_body_limit, cfg,
                         slim_cfg, passage_max_length=passage_max_length, target_speedup=target_speedup,
                         importance=importance, pooling=pooling, teacher=distill_from, slim_by=slim_by,
                         negatives_by=negatives_by, channels_from=channels_from, plan_by=plan_by,
                         plan_depth=plan_depth)
    for name, path in steps.items():
        click.echo(f"{name:>12}: {path}")


@compress.command("export")
@click.argument("trained", type=click.Path(exists=True))
@click.option("--base", required=True, help="the registry name or folder of the model it was made from")
@click.option("--out", required=True, type=click.Path(), help="artefact folder, e.g. models/<system>")
@click.option("--dataset", required=True, type=click.Path(exists=True), help="BEIR folder whose first documents probe the rebuild")
@click.option("--probe", default=20, show_default=True, help="probe documents")
@click.option("--adapter", type=click.Path(exists=True), default=None, help="LoRA adapter folder (default TRAINED/adapter)")
@click.option("--command", "made_by", default="", help="the command that trained it, recorded in the manifest")
@click.option("--metrics", type=click.Path(exists=True), default=None, help="metrics.json whose figures to record")
@friendly_errors
def export_cmd(trained, base, out, dataset, probe, adapter, made_by, metrics):
    """Keep a trained system as the small pieces that rebuild it: LoRA adapter (fp16), cut, kept channels."""
    from effir.compression.artefact import export, figures_of

    ids, texts = probe_documents(dataset, probe)
    manifest = export(trained, base, out, ids, texts, made_by, figures_of(metrics) if metrics else None, adapter)
    click.echo(f"{len(manifest['files'])} files, rebuild max |diff| {manifest['rebuild_max_abs_diff']:.1e} -> {out}")


@compress.command("record")
@click.argument("artefact", type=click.Path(exists=True))
@click.option("--metrics", required=True, type=click.Path(exists=True),
              help="metrics.json of the system rebuilt from ARTEFACT (e.g. by `make demo-llm`)")
@friendly_errors
def record_cmd(artefact, metrics):
    """Record in an artefact's manifest the figures its rebuilt system scored (its pieces are untouched)."""
    from effir.compression.artefact import record_figures

    figures = record_figures(artefact, metrics)["figures"]
    click.echo(f"{artefact}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


@compress.command("rebuild")
@click.argument("artefact", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(), help="model folder to write")
@friendly_errors
def rebuild_cmd(artefact, out):
    """Rebuild a system from its base model and the artefact folder (checksums checked first)."""
    from effir.compression.artefact import rebuild

    spec = rebuild(artefact, out)
    click.echo(f"-> {spec.path}")


@compress.command("info")
@click.argument("folder")
@click.option("--seq-len", default=256, show_default=True, help="sequence length for attention FLOPs")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def info_cmd(folder, seq_len, as_json):
    """Parameters, FLOPs per token, dropped sublayers and MLP widths of a model."""
    from effir.compression.info import describe
    from effir.compression.steps import load

    _spec, net, _tok = load(folder)
    info = describe(net, seq_len)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"parameters          {info['params']:,} ({info['params_non_embedding']:,} non-embedding)")
    click.echo(f"FLOPs/token @{seq_len:<5}  {info['flops_per_token']:,}")
    click.echo(f"layers              {info['layers']}")
    click.echo(f"dropped MLP         {info['dropped_mlp']}")
    click.echo(f"dropped attention   {info['dropped_attn']}")
    click.echo(f"MLP widths          {info['mlp_widths']} (of {info['intermediate_size']})")
