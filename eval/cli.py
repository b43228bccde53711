from __future__ import annotations

import click

from effir.core.options import friendly_errors


def metrics_table(rows: list[tuple[str, dict]]) -> str:
    head = f"{'system':<28} {'nDCG@10':>8} {'R@100':>8} {'MRR@10':>8} {'queries':>8}"
    lines = [head, "-" * len(head)]
    for name, m in rows:
        lines.append(f"{name:<28} {m['ndcg@10']:>8.4f} {m['recall@100']:>8.4f} {m['mrr@10']:>8.4f} {m['queries']:>8}")
    return "\n".join(lines)


@click.command("eval")
@click.option("--run", "run_path", required=True, type=click.Path())
@click.option("--qrels", required=True, type=click.Path())
@click.option("--json", "json_out", type=click.Path(), default=None, help="write the metrics as JSON")
@friendly_errors
def eval_cmd(run_path, qrels, json_out):
    """nDCG@10, R@100, MRR@10 (trec_eval semantics) of a TREC run."""
    from pathlib import Path

    from effir.core.data import read_qrels
    from effir.core.files import write_json
    from effir.core.trec import read_trec_run
    from effir.eval.metrics import evaluate

    metrics = evaluate(read_trec_run(run_path), read_qrels(qrels))
    click.echo(metrics_table([(Path(run_path).name, metrics)]))
    if json_out:
        write_json(json_out, metrics)
