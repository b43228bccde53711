from __future__ import annotations

import click

from effir.core.options import friendly_errors


def metrics_table(rows: list[tuple[str, dict]]) -> str:
    w = max([28] + [len(name) for name, _ in rows])
    head = f"{'system':<{w}} {'nDCG@10':>8} {'R@100':>8} {'MRR@10':>8} {'queries':>8}"
    lines = [head, "-" * len(head)]
    for name, m in rows:
        lines.append(f"{name:<{w}} {m['ndcg@10']:>8.4f} {m['recall@100']:>8.4f} {m['mrr@10']:>8.4f} {m['queries']:>8}")
    return "\n".join(lines)


@click.command("eval")
@click.option("--run", "run_paths", required=True, multiple=True, type=click.Path(),
              help="a TREC run; repeat it for several runs of one system (e.g. training seeds): their mean is scored")
@click.option("--qrels", required=True, type=click.Path())
@click.option("--against", "against_paths", multiple=True, type=click.Path(),
              help="a second system's TREC run (repeatable as --run): both scored, and a paired test of --run against "
                   "it on per-query nDCG@10 (each query's mean over a system's runs)")
@click.option("--json", "json_out", type=click.Path(), default=None, help="write the metrics as JSON")
@friendly_errors
def eval_cmd(run_paths, qrels, against_paths, json_out):
    """nDCG@10, R@100, MRR@10 (trec_eval semantics) of a TREC run; with --against, of two systems, and whether they
    differ (paired randomization test and paired t-test over the queries both answered)."""
    from pathlib import Path

    from effir.core.data import read_qrels
    from effir.core.files import write_json
    from effir.core.trec import read_trec_run
    from effir.eval.metrics import mean_per_query, per_query, summarize
    from effir.eval.report import percent_interval
    from effir.eval.significance import compare

    paths = run_paths + against_paths
    if len({Path(path).resolve() for path in paths}) < len(paths):
        raise click.UsageError(f"a run file is given twice among {', '.join(paths)}: each --run and --against "
                               "must be a different file")
    judged = read_qrels(qrels)
    scored = {path: per_query(read_trec_run(path), judged) for path in paths}
    # runs keep one file name per folder (run.test.trec), so name each by its folder too where the names collide
    same = len({Path(path).name for path in paths}) < len(paths)
    label = {path: str(Path(Path(path).parent.name, Path(path).name)) if same else Path(path).name for path in paths}
    sides = {"--run": run_paths, "--against": against_paths}
    system = {flag: mean_per_query([scored[p] for p in side]) for flag, side in sides.items() if side}
    rows = [(label[path], summarize(scored[path])) for path in paths]
    rows += [(f"mean of {len(side)} {flag} runs", summarize(system[flag])) for flag, side in sides.items()
             if len(side) > 1]
    click.echo(metrics_table(rows))
    out = summarize(system["--run"])
    if len(run_paths) > 1:
        out["runs"] = {path: summarize(scored[path]) for path in run_paths}
    if against_paths:
        paired = compare(system["--run"], system["--against"])
        out = {**out, "against": {"runs": list(against_paths), **paired}}
        names = {flag: label[side[0]] if len(side) == 1 else f"mean of {len(side)} {flag} runs"
                 for flag, side in sides.items()}
        low, high = paired["delta_ci95"]
        click.echo(f"{names['--run']} − {names['--against']}: Δ nDCG@10 {paired['delta']:+.4f} over "
                   f"{paired['queries']} queries (95 % interval {low:+.4f} to {high:+.4f}), "
                   f"p {paired['p_randomization']:.4f} (randomization), {paired['p_ttest']:.4f} (t)")
        if paired["share"] is not None:
            click.echo(f"{names['--run']} / {names['--against']}: {100 * paired['share']:.1f} % of its nDCG@10 "
                       f"(95 % interval {percent_interval(paired['share_ci95'])})")
    if json_out:
        write_json(json_out, out)


@click.command("replot")
@click.argument("folders", nargs=-1, required=True, type=click.Path())
@friendly_errors
def replot_cmd(folders):
    """Draw each `effir bench` report's pareto.png again from its report.json, report.md left as written: after a
    change to the plot, or for a report folder copied without it."""
    from effir.eval.report import replot

    for folder in folders:
        click.echo(replot(folder))
