"""`effir compress ...`: analyze, drop, train, slim, effir (the recipe), info."""

from __future__ import annotations

import json

import click

from effir.options import friendly_errors


def _ints(value: str | None):
    return [int(x) for x in value.split(",") if x.strip()] if value else None


def calibration_options(f):
    f = click.option("--calibration", default=256, show_default=True, help="calibration texts")(f)
    f = click.option("--texts", type=click.Path(exists=True), default=None, help="calibration texts file (.jsonl or one per line)")(f)
    return click.option("--dataset", type=click.Path(exists=True), default=None, help="BEIR folder: calibration samples its corpus")(f)


def train_options(f):
    opts = [
        click.option("--split", default="train", show_default=True, help="qrels split of --dataset to train on (never test)"),
        click.option("--title-body", multiple=True, type=click.Path(exists=True), help="label-free title→body pairs from this BEIR corpus (repeatable)"),
        click.option("--title-body-limit", default=2000, show_default=True, help="pairs per --title-body corpus"),
        click.option("--epochs", default=1.0, show_default=True),
        click.option("--batch-size", default=16, show_default=True),
        click.option("--negatives", default=1, show_default=True, help="BM25 hard negatives per query"),
        click.option("--lr", default=None, type=float, help="learning rate (default 2e-5 full, 1e-4 LoRA, 0.05 slim gates)"),
        click.option("--temperature", default=0.05, show_default=True),
        click.option("--lora", is_flag=True, help="LoRA through peft (merged on save) instead of full fine-tuning"),
        click.option("--lora-r", default=32, show_default=True),
        click.option("--lora-alpha", default=64, show_default=True),
        click.option("--max-steps", type=int, default=None),
        click.option("--seed", default=0, show_default=True),
        click.option("--passage-max-length", type=int, default=None, help="truncate passages during training"),
        click.option("--work", type=click.Path(), default=None, help="checkpoints and logs (default: OUT.work)"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _config(epochs, batch_size, negatives, lr, temperature, lora, lora_r, lora_alpha, max_steps, seed, default_lr):
    from effir.compression.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, negatives=negatives, lr=lr or default_lr,
                       temperature=temperature, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                       max_steps=max_steps, seed=seed)


@click.group("compress")
def compress():
    """Compress a retriever (EffiR: analyze → drop → train → slim → train) and inspect the result."""


@compress.command("analyze")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@calibration_options
@click.option("--max-length", default=256, show_default=True)
@click.option("--threads", type=int, default=None)
@friendly_errors
def analyze_cmd(model, out, dataset, texts, calibration, max_length, threads):
    """Importance of every attention and MLP sublayer: OUT/importance.json and OUT/importance.png."""
    from effir.compression.steps import analyze, calibration_texts
    from effir.device import configure_threads

    configure_threads(threads)
    scores = analyze(model, out, calibration_texts(dataset, texts, calibration), max_length=max_length)
    click.echo(f"{'layer':>5} {'attention':>10} {'MLP':>10}")
    for i, (a, m) in enumerate(zip(scores["attn"], scores["mlp"])):
        click.echo(f"{i:>5} {a if a is not None else '-':>10} {m if m is not None else '-':>10}")
    click.echo(f"-> {out}/importance.json, {out}/importance.png")


@compress.command("drop")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--mlp", "n_mlp", default=0, show_default=True, help="MLP sublayers to drop (least important first)")
@click.option("--attn", "n_attn", default=0, show_default=True, help="attention sublayers to drop")
@click.option("--mlp-layers", default=None, help="explicit MLP layer indices, e.g. 3,4")
@click.option("--attn-layers", default=None, help="explicit attention layer indices")
@click.option("--importance", type=click.Path(exists=True), default=None, help="importance.json from `analyze`")
@calibration_options
@click.option("--threads", type=int, default=None)
@friendly_errors
def drop_cmd(model, out, n_mlp, n_attn, mlp_layers, attn_layers, importance, dataset, texts, calibration, threads):
    """Remove the least important sublayers; each becomes an exact identity and its parameters are gone."""
    from effir.compression.steps import analyze, calibration_texts, drop
    from effir.device import configure_threads

    configure_threads(threads)
    scores = None
    if (n_mlp or n_attn) and not (mlp_layers or attn_layers):
        if importance:
            scores = json.loads(open(importance).read())
        else:
            scores = analyze(model, f"{out}.analyze", calibration_texts(dataset, texts, calibration))
    new, before, after = drop(model, out, scores, n_mlp, n_attn, _ints(mlp_layers), _ints(attn_layers))
    saved = 1 - after["params_non_embedding"] / before["params_non_embedding"]
    click.echo(f"dropped MLP {new.dropped_mlp}, attention {new.dropped_attn}: non-embedding parameters "
               f"{before['params_non_embedding']:,} -> {after['params_non_embedding']:,} (-{saved:.1%}), "
               f"FLOPs/token x{after['flops_per_token'] / before['flops_per_token']:.3f} -> {out}")


def _examples(out, work, dataset, split, title_body, title_body_limit):
    """(work folder, training examples) as `train` and `slim` both read them."""
    from pathlib import Path

    from effir.compression.steps import training_examples

    work = Path(work or f"{out}.work")
    examples = training_examples(dataset, split if dataset else None, list(title_body), title_body_limit, work)
    click.echo(f"{len(examples)} training examples", err=True)
    return work, examples


@compress.command("train")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--dataset", type=click.Path(exists=True), default=None, help="BEIR folder whose qrels --split is the training set")
@train_options
@click.option("--distill-from", default=None, help="teacher model: adds 1 − cos(student, teacher) on every text")
@click.option("--distill-weight", default=1.0, show_default=True)
@click.option("--threads", type=int, default=None)
@friendly_errors
def train_cmd(model, out, dataset, split, title_body, title_body_limit, passage_max_length, work, distill_from,
              distill_weight, threads, **kw):
    """Retrieval fine-tuning: InfoNCE with in-batch and BM25 hard negatives (LoRA or full)."""
    from effir.compression.steps import finetune
    from effir.device import configure_threads

    configure_threads(threads)
    cfg = _config(**kw, default_lr=1e-4 if kw["lora"] else 2e-5)
    if distill_from:
        cfg.distill_weight = distill_weight
    work, examples = _examples(out, work, dataset, split, title_body, title_body_limit)
    new = finetune(model, out, examples, cfg, work, teacher=distill_from, passage_max_length=passage_max_length)
    click.echo(f"-> {new.path}")


@compress.command("slim")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--dataset", type=click.Path(exists=True), default=None)
@click.option("--reduction", default=0.3, show_default=True, help="fraction of the remaining MLP width to remove")
@click.option("--l0-weight", default=1.0, show_default=True)
@train_options
@click.option("--threads", type=int, default=None)
@friendly_errors
def slim_cmd(model, out, dataset, reduction, l0_weight, split, title_body, title_body_limit, passage_max_length,
             work, threads, **kw):
    """Self-slimming: learn channel gates with InfoNCE + λ·L0, then cut the MLPs and fold the gates."""
    from effir.compression.steps import slim
    from effir.device import configure_threads

    configure_threads(threads)
    cfg = _config(**kw, default_lr=0.05)
    work, examples = _examples(out, work, dataset, split, title_body, title_body_limit)
    new, widths = slim(model, out, examples, reduction, cfg, work, l0_weight=l0_weight,
                       passage_max_length=passage_max_length)
    click.echo(f"MLP widths {widths} -> {new.path}")


def cut_options(f):
    opts = [
        click.option("--drop-fraction", default=0.5, show_default=True, help="share of MLP sublayers to drop (paper: 16/32)"),
        click.option("--reduction", default=0.3, show_default=True, help="share of the remaining MLP width to remove"),
        click.option("--target-speedup", type=float, default=None,
                     help="instead: the cut reaching this analytic FLOP ratio on documents with the least importance removed"),
        click.option("--importance", type=click.Path(exists=True), default=None,
                     help="importance.json from `analyze` (default: computed on --dataset)"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _scores(model, importance, dataset, out):
    from effir.compression.steps import analyze, calibration_texts

    if importance:
        return json.loads(open(importance).read())
    return analyze(model, out, calibration_texts(dataset))


@compress.command("plan")
@click.option("--model", "-m", required=True)
@click.option("--dataset", type=click.Path(exists=True), default=None,
              help="BEIR folder: calibration texts, and the typical document and query lengths")
@cut_options
@click.option("--out", type=click.Path(), default=None, help="also write the plan (and importance) here")
@click.option("--json", "as_json", is_flag=True)
@click.option("--threads", type=int, default=None)
@friendly_errors
def plan_cmd(model, dataset, drop_fraction, reduction, target_speedup, importance, out, as_json, threads):
    """Print the cut a budget asks for: sublayers dropped, width removed, predicted FLOP ratios; changes nothing."""
    import tempfile

    from effir.compression.steps import plan_cut
    from effir.device import configure_threads
    from effir.files import write_json

    configure_threads(threads)
    if not (importance or dataset):
        raise click.UsageError("give --importance FILE, or --dataset to compute it")
    scores = _scores(model, importance, dataset, out or tempfile.mkdtemp(prefix="effir-plan-"))
    n_drop = int(round(drop_fraction * sum(x is not None for x in scores["mlp"])))
    try:
        chosen = plan_cut(model, scores, target_speedup, n_drop, reduction, dataset)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    if out:
        write_json(f"{out}/plan.json", chosen.to_json())
    click.echo(json.dumps(chosen.to_json(), indent=2) if as_json else chosen.describe())


@compress.command("effir")
@click.option("--model", "-m", required=True)
@click.option("--dataset", required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path())
@cut_options
@click.option("--slim-steps", type=int, default=None, help="gate-training steps of self-slimming (default: as training)")
@click.option("--slim-lr", default=0.05, show_default=True)
@train_options
@click.option("--threads", type=int, default=None)
@friendly_errors
def effir_cmd(model, dataset, out, drop_fraction, reduction, target_speedup, importance, slim_steps, slim_lr, split,
              title_body, title_body_limit, passage_max_length, work, threads, **kw):
    """The EffiR recipe: analyze → plan → drop → slim → train, every intermediate folder kept."""
    from dataclasses import replace

    from effir.compression.steps import effir_recipe
    from effir.device import configure_threads

    configure_threads(threads)
    cfg = _config(**kw, default_lr=1e-4 if kw["lora"] else 2e-5)
    slim_cfg = replace(cfg, lr=slim_lr, lora=False, max_steps=slim_steps or cfg.max_steps)
    try:
        steps = effir_recipe(model, dataset, out, drop_fraction, reduction, split, title_body, title_body_limit, cfg,
                             slim_cfg, passage_max_length=passage_max_length, target_speedup=target_speedup,
                             importance=importance)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    for name, path in steps.items():
        click.echo(f"{name:>12}: {path}")


def _sparsity_command(method: str, doc: str):
    @compress.command(method, help=doc)
    @click.option("--model", "-m", required=True)
    @click.option("--out", required=True, type=click.Path())
    @click.option("--ratio", default=0.5, show_default=True, help="fraction of weights zeroed in every linear layer")
    @click.option("--nm", default=None, help="semi-structured N:M instead, e.g. 2:4")
    @calibration_options
    @click.option("--max-length", default=256, show_default=True)
    @click.option("--threads", type=int, default=None)
    @friendly_errors
    def cmd(model, out, ratio, nm, dataset, texts, calibration, max_length, threads):
        from effir.compression.steps import calibration_texts, sparsify_folder
        from effir.device import configure_threads

        configure_threads(threads)
        pattern = tuple(int(x) for x in nm.split(":")) if nm else None
        figures = sparsify_folder(model, out, calibration_texts(dataset, texts, calibration), method, ratio,
                                  pattern, max_length)
        click.echo(f"{method}: {figures['zeros']:,} of {figures['weights']:,} block weights are zero "
                   f"({figures['sparsity']:.2%}) -> {out}")

    return cmd


_sparsity_command("wanda", "Wanda sparsity: prune the lowest |W|·‖X‖ in every output row (calibrated on texts).")
_sparsity_command("sparsegpt", "SparseGPT sparsity: OBS pruning with inverse-Hessian reconstruction (calibrated).")


@compress.command("nsvd")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--keep", default=0.6, show_default=True, help="fraction of each linear layer's parameters kept")
@click.option("--k1-fraction", default=0.95, show_default=True, help="rank share of the whitened first stage")
@calibration_options
@click.option("--max-length", default=256, show_default=True)
@click.option("--threads", type=int, default=None)
@friendly_errors
def nsvd_cmd(model, out, keep, k1_fraction, dataset, texts, calibration, max_length, threads):
    """Nested activation-aware low-rank decomposition of the block linears (no fine-tuning)."""
    from effir.compression.steps import calibration_texts, nsvd_folder
    from effir.device import configure_threads

    configure_threads(threads)
    f = nsvd_folder(model, out, calibration_texts(dataset, texts, calibration), keep, k1_fraction, max_length)
    click.echo(f"factored {f['factored']} of {f['linears']} linears; non-embedding parameters "
               f"{f['params_non_embedding_before']:,} -> {f['params_non_embedding']:,} -> {out}")


@compress.command("shadow")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--dataset", type=click.Path(exists=True), default=None,
              help="BEIR folder: its corpus's title → body pairs train the predictor (not needed with --predictor-from)")
@click.option("--pairs", "n_pairs", default=512, show_default=True, help="title → body pairs for the targets")
@click.option("--split", default=None, help="also use this qrels split's pairs (never test)")
@click.option("--head-keep", default=0.75, show_default=True, help="fraction of attention heads computed per input")
@click.option("--mlp-keep", default=0.5, show_default=True, help="fraction of MLP channels computed per input")
@click.option("--width", default=512, show_default=True, help="predictor hidden width")
@click.option("--epochs", default=100, show_default=True, help="predictor training epochs")
@click.option("--predictor-from", default=None, help="reuse the predictor of this shadow folder (no training)")
@click.option("--threads", type=int, default=None)
@friendly_errors
def shadow_cmd(model, out, dataset, n_pairs, split, head_keep, mlp_keep, width, epochs, predictor_from, threads):
    """Contextual sparsity (ShadowLLM): a predictor on layer 0's output picks each input's heads and channels."""
    from effir.compression.pairs import text_pairs
    from effir.compression.steps import shadow_folder
    from effir.data import BeirDataset
    from effir.device import configure_threads

    configure_threads(threads)
    if not (dataset or predictor_from):
        raise click.UsageError("give --dataset to train the predictor, or --predictor-from FOLDER to reuse one")
    pairs = [] if predictor_from else text_pairs(BeirDataset(dataset), n_pairs, split)
    s = shadow_folder(model, out, pairs, head_keep, mlp_keep, width, epochs, predictor_from)
    rho = ", ".join(f"{k} {s[k]}" for k in ("spearman_heads", "spearman_mlp") if k in s)
    click.echo(f"heads kept {head_keep:.0%}, MLP channels kept {mlp_keep:.0%}; held-out {rho} -> {out}")


@compress.command("quantize")
@click.option("--model", "-m", required=True)
@click.option("--out", required=True, type=click.Path())
@click.option("--method", type=click.Choice(["int8-dynamic", "nf4"]), default="int8-dynamic", show_default=True,
              help="int8-dynamic on CPU, nf4 (bitsandbytes) on CUDA")
@friendly_errors
def quantize_cmd(model, out, method):
    """Quantise the linear layers of any folder (EffiR ones too: drop/slim first, quantise last)."""
    from effir.compression.steps import quantize_folder

    quantize_folder(model, out, method)
    click.echo(f"{method} recorded -> {out} (applied when the folder is loaded)")


def probe_documents(dataset: str, n: int = 20) -> tuple[list[str], list[str]]:
    """(ids, texts) of the first `n` documents of a corpus, in file order: fixed probe texts for artefacts."""
    import itertools

    from effir.data import BeirDataset

    docs = list(itertools.islice(BeirDataset(dataset).corpus(), n))
    return [d.docid for d in docs], [d.contents for d in docs]


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
    from effir.compression.artefact import ArtefactError, export

    figures = None
    if metrics:
        m = json.loads(open(metrics).read())
        figures = {k: m[k] for k in ("dataset", "split", "ndcg@10", "recall@100", "mrr@10") if k in m}
    ids, texts = probe_documents(dataset, probe)
    try:
        manifest = export(trained, base, out, ids, texts, made_by, figures, adapter)
    except ArtefactError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{len(manifest['files'])} files, rebuild max |diff| {manifest['rebuild_max_abs_diff']:.1e} -> {out}")


@compress.command("rebuild")
@click.argument("artefact", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(), help="model folder to write")
@friendly_errors
def rebuild_cmd(artefact, out):
    """Rebuild a system from its base model and the artefact folder (checksums checked first)."""
    from effir.compression.artefact import ArtefactError, rebuild

    try:
        spec = rebuild(artefact, out)
    except ArtefactError as e:
        raise click.ClickException(str(e)) from e
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
