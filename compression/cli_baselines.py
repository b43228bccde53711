"""`effir compress` commands for the methods EffiR is compared with: Wanda, SparseGPT, NSVD, contextual sparsity
(ShadowLLM) and quantisation. Each writes a model folder the encoder and `effir bench` load like any other."""

from __future__ import annotations

import click

from effir.compression.cli_options import UNIT_OPEN, UNIT_SHARE_KEPT, calibration_options, compress, model_command


def _n_of_m(ctx, param, value):
    """--nm N:M → (N, M), N zeros in every M consecutive weights, 0 < N < M."""
    if value is None:
        return None
    try:
        n, m = (int(x) for x in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not N:M, e.g. 2:4") from None
    if not 0 < n < m:
        raise click.BadParameter(f"{value!r}: N zeros in every M weights needs 0 < N < M, e.g. 2:4")
    return n, m


def _sparsity_command(method: str, doc: str):
    @model_command(compress, method, help=doc)
    @click.option("--ratio", default=0.5, show_default=True, type=UNIT_OPEN, help="fraction of weights zeroed in every linear layer")
    @click.option("--nm", default=None, callback=_n_of_m, help="semi-structured N:M instead, e.g. 2:4")
    @calibration_options
    @click.option("--max-length", default=256, show_default=True)
    def cmd(model, out, ratio, nm, dataset, texts, calibration, max_length):
        from effir.compression.baselines import sparsify_folder
        from effir.compression.steps import calibration_texts

        figures = sparsify_folder(model, out, calibration_texts(dataset, texts, calibration), method, ratio,
                                  nm, max_length)
        click.echo(f"{method}: {figures['zeros']:,} of {figures['weights']:,} block weights are zero "
                   f"({figures['sparsity']:.2%}) -> {out}")

    return cmd


_sparsity_command("wanda", "Wanda sparsity: prune the lowest |W|·‖X‖ in every output row (calibrated on texts).")
_sparsity_command("sparsegpt", "SparseGPT sparsity: OBS pruning with inverse-Hessian reconstruction (calibrated).")


@model_command(compress, "nsvd")
@click.option("--keep", default=0.6, show_default=True, type=UNIT_OPEN, help="fraction of each linear layer's parameters kept")
@click.option("--k1-fraction", default=0.95, show_default=True, type=UNIT_SHARE_KEPT, help="rank share of the whitened first stage")
@calibration_options
@click.option("--max-length", default=256, show_default=True)
def nsvd_cmd(model, out, keep, k1_fraction, dataset, texts, calibration, max_length):
    """Nested activation-aware low-rank decomposition of the block linears (no fine-tuning)."""
    from effir.compression.baselines import nsvd_folder
    from effir.compression.steps import calibration_texts

    f = nsvd_folder(model, out, calibration_texts(dataset, texts, calibration), keep, k1_fraction, max_length)
    click.echo(f"factored {f['factored']} of {f['linears']} linears; non-embedding parameters "
               f"{f['params_non_embedding_before']:,} -> {f['params_non_embedding']:,} -> {out}")


@model_command(compress, "shadow")
@click.option("--dataset", type=click.Path(exists=True), default=None,
              help="BEIR folder: its corpus's title → body pairs train the predictor (not needed with --predictor-from)")
@click.option("--pairs", "n_pairs", default=512, show_default=True, help="title → body pairs for the targets")
@click.option("--split", default=None, help="also use this qrels split's pairs (never test)")
@click.option("--head-keep", default=0.75, show_default=True, type=UNIT_SHARE_KEPT, help="fraction of attention heads computed per input")
@click.option("--mlp-keep", default=0.5, show_default=True, type=UNIT_SHARE_KEPT, help="fraction of MLP channels computed per input")
@click.option("--width", default=512, show_default=True, help="predictor hidden width")
@click.option("--epochs", default=100, show_default=True, help="predictor training epochs")
@click.option("--predictor-from", default=None, help="reuse the predictor of this shadow folder (no training)")
def shadow_cmd(model, out, dataset, n_pairs, split, head_keep, mlp_keep, width, epochs, predictor_from):
    """Contextual sparsity (ShadowLLM): a predictor on layer 0's output picks each input's heads and channels."""
    from effir.compression.baselines import shadow_folder
    from effir.compression.pairs import text_pairs
    from effir.core.data import BeirDataset

    if not (dataset or predictor_from):
        raise click.UsageError("give --dataset to train the predictor, or --predictor-from FOLDER to reuse one")
    pairs = [] if predictor_from else text_pairs(BeirDataset(dataset), n_pairs, split)
    s = shadow_folder(model, out, pairs, head_keep, mlp_keep, width, epochs, predictor_from)
    rho = ", ".join(f"{k} {s[k]}" for k in ("spearman_heads", "spearman_mlp") if k in s)
    click.echo(f"heads kept {head_keep:.0%}, MLP channels kept {mlp_keep:.0%}; held-out {rho} -> {out}")


@model_command(compress, "quantize")
@click.option("--method", type=click.Choice(["int8-dynamic", "int8-token", "bf16", "nf4"]), default="int8-dynamic",
              show_default=True, help="int8-dynamic (torch, per-tensor activation scales) or int8-token (per-token "
                                      "activation scales) on CPU; bf16 (the whole model in bfloat16: fast on CPUs "
                                      "with AMX or AVX512-BF16, slow without); nf4 (bitsandbytes) on CUDA")
@click.option("--per-channel", is_flag=True,
              help="int8-dynamic: one weight scale per output channel instead of per tensor (int8-token always is)")
@click.option("--keep-outliers", "outlier_ratio", type=click.FloatRange(min=1), default=None,
              help="int8: leave fp32 every linear whose input's largest |x| on the calibration texts exceeds this "
                   "many times the median token's (massive activations); needs --dataset or --texts")
@calibration_options
def quantize_cmd(model, out, method, per_channel, outlier_ratio, dataset, texts, calibration):
    """Quantise the linear layers of any folder (EffiR ones too: drop/slim first, quantise last)."""
    from effir.compression.baselines import quantize_folder
    from effir.compression.steps import calibration_texts

    if per_channel and method != "int8-dynamic":
        raise click.UsageError("--per-channel applies to int8-dynamic only")
    if outlier_ratio is not None and not method.startswith("int8"):
        raise click.UsageError("--keep-outliers applies to the int8 methods only")
    if outlier_ratio is not None and not (dataset or texts):
        raise click.UsageError("--keep-outliers measures inputs on calibration text: give --dataset or --texts")
    sample = calibration_texts(dataset, texts, calibration) if outlier_ratio is not None else []
    config = quantize_folder(model, out, method, per_channel, outlier_ratio, sample)
    kept = f", {len(config['fp32_linears'])} linears kept fp32" if outlier_ratio is not None else ""
    click.echo(f"{method} recorded{kept} -> {out} (applied when the folder is loaded)")
