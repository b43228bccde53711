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
@click.option("--run", "run_path", required=True, type=click.Path())
@click.option("--qrels", required=True, type=click.Path())
@click.option("--against", "against_path", type=click.Path(), default=None,
              help="a second TREC run: both scored, and a paired test of --run against it on per-query nDCG@10")
@click.option("--json", "json_out", type=click.Path(), default=None, help="write the metrics as JSON")
@friendly_errors
def eval_cmd(run_path, qrels, against_path, json_out):
    """nDCG@10, R@100, MRR@10 (trec_eval semantics) of a TREC run; with --against, of two runs, and whether they
    differ (paired randomization test and paired t-test over the queries both answered)."""
    from pathlib import Path

    from effir.core.data import read_qrels
    from effir.core.files import write_json
    from effir.core.trec import read_trec_run
    from effir.eval.metrics import evaluate, per_query
    from effir.eval.significance import compare

    if against_path and Path(against_path).resolve() == Path(run_path).resolve():
        raise click.UsageError(f"--against {against_path} is the --run itself")
    judged = read_qrels(qrels)
    runs = {path: read_trec_run(path) for path in filter(None, (run_path, against_path))}
    metrics = {path: evaluate(run, judged) for path, run in runs.items()}
    # runs keep one file name per folder (run.test.trec), so name each by its folder too where the names collide
    same = len({Path(path).name for path in runs}) < len(runs)
    label = {path: str(Path(Path(path).parent.name, Path(path).name)) if same else Path(path).name for path in runs}
    click.echo(metrics_table([(label[path], m) for path, m in metrics.items()]))
    out = metrics[run_path]
    if against_path:
        paired = compare(per_query(runs[run_path], judged), per_query(runs[against_path], judged))
        out = {**out, "against": {"run": against_path, **paired}}
        click.echo(f"{label[run_path]} − {label[against_path]}: Δ nDCG@10 {paired['delta']:+.4f} over "
                   f"{paired['queries']} queries, p {paired['p_randomization']:.4f} (randomization), "
                   f"{paired['p_ttest']:.4f} (t)")
    if json_out:
        write_json(json_out, out)
