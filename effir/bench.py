"""`effir bench`: every stage for each system on one dataset, then the full-versus-compressed report.

Quality comes from the cached pipeline (a rerun reproduces it exactly). Speed comes from interleaved timing on
the same inputs: after a warm-up, the systems encode the same document sample and the same queries in turn
(A B C, C B A, ...; effir/speed.py), in groups of a few systems with the reference (and the control) in each, and
medians over rounds are compared as ratios against the same group's reference. `--speed-only` runs the timing
alone, with no corpus encoded.
"""

from __future__ import annotations

from pathlib import Path

import click

from effir.core.options import friendly_errors
from effir.rows import bm25_system, cost_only_system, dense_system, hybrid_system
from effir.speed import GROUP_SIZE
from effir.systems import check_parents, describe_training, parse_systems, resolve_parents


def with_provenance(row, encoder):
    """The row's training, from its encoder's effir.json (its parent is found from its folder: `resolve_parents`)."""
    row.trained = describe_training(encoder.spec)
    return row


def quality_rows(dataset, named, hybrids, encoders: dict, work: Path, split: str, factory: str) -> list:
    """One row per system on one collection (cached stages), hybrids fused from their halves' runs."""
    from effir.core.data import BeirDataset

    ds = BeirDataset(dataset)
    rows = []
    for name, system in named:
        click.echo(f"== {ds.name}: {name}", err=True)
        if system == "bm25":
            rows.append(bm25_system(dataset, work / ds.name / "bm25", split))
            continue
        enc = encoders[name]
        rows.append(with_provenance(dense_system(system, dataset, work / ds.name / name, split, factory, enc), enc))
    by_name = {r.name: r for r in rows}
    for name, halves in hybrids.items():
        rows.append(hybrid_system(name, [by_name[h] for h in halves], ds.qrels(split), work / ds.name / name))
    return rows


def reference_importance(spec, texts: list[str], folder: Path, out: Path) -> None:
    """The reference's sublayer importance on `texts` (the report's plot) into `out`, computed once per model and
    sample and kept in its work `folder`: a quality-only rerun would otherwise spend minutes of a full LLM on it."""
    import hashlib
    import json
    import shutil

    from effir.compression.steps import analyze
    from effir.encoder.model import model_fingerprint
    from effir.pipeline import Stages

    made = folder / "importance"
    key = {"model": model_fingerprint(spec), "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest()}
    stages = Stages(folder)
    if stages.done("importance", key) is None:
        analyze(spec.path, made, texts)
        stages.record("importance", key, outputs=[made / "importance.json", made / "importance.png"])
    shutil.copytree(made, out, dirs_exist_ok=True)


def _kept(row, other) -> tuple[float | None, list | None, float | None]:
    """(row's nDCG@10 as a share of other's, that share's 95 % interval, paired randomization p on per-query
    nDCG@10); Nones without other."""
    from effir.eval.significance import compare

    if other is None:
        return None, None, None
    paired = compare(row.per_query, other.per_query)
    share = round(row.ndcg_10 / other.ndcg_10, 4) if other.ndcg_10 else None
    return share, paired["share_ci95"], paired["p_randomization"]


def compare_rows(rows: list, ref: str | None, parents: dict[str, str], peers: dict[str, str]) -> None:
    """Parent, retention and p-values for the rows of one collection, and for the rows given a --peer (their parent
    given their own training) the same against it; rows without quality (--speed-only) get their parent alone."""
    resolve_parents(rows, parents)
    by_name = {r.name: r for r in rows}
    for r in rows:
        r.peer = peers.get(r.name)
        if r.ndcg_10 is None:
            continue
        r.p_value_vs_full = _kept(r, by_name[ref])[2] if ref and r.name != ref else None
        r.retention, r.retention_ci95, r.p_value_vs_parent = _kept(r, by_name.get(r.parent))
        r.retention_vs_peer, r.retention_vs_peer_ci95, r.p_value_vs_peer = _kept(r, by_name.get(r.peer))


PER_COLLECTION = ("ndcg@10", "recall@100", "mrr@10", "retention", "retention_ci95", "p_value_vs_parent",
                  "retention_vs_peer", "retention_vs_peer_ci95", "p_value_vs_peer")


def run_bench(datasets, systems: list[str], out: Path, split: str = "test", factory: str = "Flat",
              timing_docs: int = 256, timing_queries: int = 100, rounds: int = 5, reference: str | None = None,
              seed: int = 0, work: Path | None = None, parents: dict[str, str] | None = None,
              peers: dict[str, str] | None = None,
              control: bool = False, query_batch: int = 32, beside: list[str] = (), speed_only: bool = False,
              group_size: int = GROUP_SIZE) -> dict:
    """Quality on every collection in `datasets`, speed once (on the first), one report; `beside`: other reports
    whose compressed rows the plot shows next to these; `speed_only`: the timing and model cost alone, no corpus
    encoded (BM25 and fused systems, which have no encoder to time, are left out); `group_size`: systems per
    timing group besides the reference and the control (effir/speed.py)."""
    from effir import speed
    from effir.compression.info import flops_per_token
    from effir.core.data import BeirDataset, sample_texts
    from effir.core.device import describe_machine
    from effir.core.models import resolve
    from effir.encoder.model import Encoder, median_lengths, model_fingerprint
    from effir.eval import report

    datasets = [datasets] if isinstance(datasets, (str, Path)) else list(datasets)
    if not systems:
        raise click.UsageError("--systems: name at least one system, e.g. bm25,minilm")
    if speed_only and rounds == 0:
        raise click.UsageError("--speed-only with --rounds 0 would measure nothing: give --rounds 1 or more")
    if speed_only and beside:
        raise click.UsageError("--beside adds rows to the quality plot, which --speed-only does not draw")
    for d in datasets:
        BeirDataset(d).require(split)
    beside = [report.beside_points(p) for p in beside]
    work = Path(work) if work else out / "systems"
    named, hybrids = parse_systems(systems)
    system_names = [n for n, _ in named] + list(hybrids)
    check_parents(system_names, parents or {})
    check_parents(system_names, peers or {}, option="--peer")
    dense = [n for n, model in named if model != "bm25"]
    if reference is not None and reference not in dense:
        raise click.UsageError(f"--reference {reference!r}: speedups are measured against a dense encoder; "
                               f"one of {dense}")
    encoders = {}
    for name, system in named:  # each model loaded once, for every collection and the timing
        if system != "bm25":
            spec = resolve(system)
            spec.name = name
            encoders[name] = Encoder(spec)
    out.mkdir(parents=True, exist_ok=True)  # only now: bad input above leaves nothing behind
    if speed_only:
        per_dataset = {BeirDataset(datasets[0]).name: [with_provenance(cost_only_system(enc), enc)
                                                       for enc in encoders.values()]}
    else:
        per_dataset = {BeirDataset(d).name: quality_rows(d, named, hybrids, encoders, work, split, factory)
                       for d in datasets}
    names = list(per_dataset)
    rows = per_dataset[names[0]]
    ref = reference or next((r.name for r in rows if r.kind == "full"), None)
    for collection_rows in per_dataset.values():
        compare_rows(collection_rows, ref, parents or {}, peers or {})
    if len(names) > 1:
        for i, r in enumerate(rows):
            r.per_dataset = {n: {k: per_dataset[n][i].metric(k) for k in PER_COLLECTION} for n in names}
            r.average = {k: round(sum(per_dataset[n][i].metric(k) for n in names) / len(names), 4)
                            for k in ("ndcg@10", "recall@100", "mrr@10")}

    ds = BeirDataset(datasets[0])
    timing, timing_groups, control_row = {}, [], None
    doc_sample, query_sample = speed.timing_sample(datasets[0], timing_docs, timing_queries, seed)
    if encoders and ref in encoders and rounds > 0:  # rounds 0: quality and analytic cost only
        # the control: the reference once more, as a second system, in every group; must read 1.00x
        twin = Encoder(encoders[ref].spec) if control else None
        # each finished group's times are kept beside the report: a rerun resumes the timing where it stopped
        timing, timing_groups = speed.timed_in_groups(
            encoders, ref, doc_sample, query_sample, rounds, query_batch, group_size, twin,
            fingerprints={name: model_fingerprint(e.spec) for name, e in encoders.items()}, kept=out / "timing")
        control_row = speed.overall_control(timing_groups)
    elif encoders and rounds > 0:  # no dense reference: seconds and docs/s, no speedups
        timing = speed.figures(speed.interleaved_timing(encoders, doc_sample, query_sample, rounds, query_batch),
                               None, len(doc_sample))
    lengths = None
    if ref in encoders:
        lengths = median_lengths(encoders[ref].tokenizer, encoders[ref].spec, doc_sample, query_sample)
        ref_flops = [flops_per_token(encoders[ref].model, n) for n in lengths]

    for r in rows:
        r.update(timing.get(r.name, {}))
        if lengths and r.name in encoders:
            model = encoders[r.name].model
            r.flops_ratio, r.query_flops_ratio = (round(f / flops_per_token(model, n), 3)
                                                  for f, n in zip(ref_flops, lengths))

    importance_png = None
    if ref in encoders and not speed_only:
        reference_importance(encoders[ref].spec, sample_texts(ds.corpus(), 256, seed), work / ds.name / ref,
                             out / "importance")
        importance_png = "importance/importance.png"

    result = {"dataset": names[0], "datasets": names, "split": split, "factory": factory, "reference": ref,
              "speed_only": speed_only,
              "machine": describe_machine(),
              "timing": {"dataset": names[0], "docs": len(doc_sample) if timing else 0,
                         "queries": len(query_sample) if timing else 0, "rounds": rounds, "query_batch": query_batch,
                         "median_tokens": {"doc": lengths[0], "query": lengths[1]} if lengths else None,
                         "order": speed.ORDER, "group_size": group_size, "groups": timing_groups,
                         "control": control_row,
                         "precision": ", ".join(dict.fromkeys(e.precision for e in encoders.values())) or "fp32"},
              "systems": rows}
    if beside:
        result["beside"] = beside
    report.write_report(result, out, importance_png=importance_png)
    return result


def _pairs(option: str, items) -> dict[str, str]:
    """CHILD=OTHER items of a repeatable option, as {child: other}."""
    pairs = {}
    for item in items:
        child, sep, other = item.partition("=")
        if not sep or not child or not other:
            raise click.UsageError(f"{option} {item!r}: expected CHILD={option.lstrip('-').upper()}")
        pairs[child] = other
    return pairs


@click.command("bench")
@click.option("--dataset", "datasets", required=True, multiple=True, type=click.Path(exists=True),
              help="BEIR dataset folder; repeat for several collections (speed is timed on the first)")
@click.option("--systems", default="bm25,minilm", show_default=True,
              help="comma-separated: bm25, registry names, model folders (full or compressed); NAME=MODEL labels one")
@click.option("--out", required=True, type=click.Path())
@click.option("--split", default="test", show_default=True)
@click.option("--factory", default="Flat", show_default=True)
@click.option("--reference", default=None, help="system the speedups are against (default: first full model)")
@click.option("--parent", "parents", multiple=True, metavar="CHILD=PARENT",
              help="the system CHILD was made from (retention and p-value against it); default: read from effir.json")
@click.option("--peer", "peers", multiple=True, metavar="CHILD=PEER",
              help="CHILD's parent given CHILD's own training, the like-for-like control (retention and p-value "
                   "against it too)")
@click.option("--timing-docs", default=256, show_default=True, help="documents in the interleaved timing sample")
@click.option("--timing-queries", default=100, show_default=True)
@click.option("--query-batch", default=32, show_default=True, help="batch size of the batched query timing")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=0),
              help="timing rounds (medians of per-round ratios); 0: no timing, quality and analytic cost only")
@click.option("--control", is_flag=True, help="also time the reference as a second system: must read 1.00x ± 0.05")
@click.option("--timing-group", "group_size", default=GROUP_SIZE, show_default=True, type=click.IntRange(min=1),
              help="systems per timing group, each group timed with the reference and the control in a run of its own")
@click.option("--work", type=click.Path(), default=None,
              help="where each system's shards, index and run go (default OUT/systems); share it between benches "
                   "to reuse finished stages")
@click.option("--beside", multiple=True, type=click.Path(),
              help="another bench's report.json: its compressed rows join the quality-kept plot (repeatable)")
@click.option("--speed-only", is_flag=True,
              help="the interleaved timing and model cost alone: no corpus encoded, no quality (minutes, not hours)")
@click.option("--threads", type=int, default=None)
@friendly_errors
def bench_cmd(datasets, systems, out, split, factory, reference, parents, peers, timing_docs, timing_queries,
              query_batch, rounds, control, group_size, work, beside, speed_only, threads):
    """Full versus compressed: quality, model cost, interleaved speed, index cost -> report.md/json + plots."""
    from effir.core.device import configure_threads
    from effir.eval.report import terminal_table

    n = configure_threads(threads)
    click.echo(f"{n} threads", err=True)
    result = run_bench(datasets, [s.strip() for s in systems.split(",") if s.strip()], Path(out), split, factory,
                       timing_docs, timing_queries, rounds, reference, work=work, parents=_pairs("--parent", parents),
                       peers=_pairs("--peer", peers), control=control, query_batch=query_batch, beside=beside,
                       speed_only=speed_only, group_size=group_size)
    click.echo(terminal_table(result))
    click.echo(f"-> {out}/report.md, {out}/report.json")
