"""The full-versus-compressed report: report.json (for tools), report.md (for people), plots, a terminal table."""

from __future__ import annotations

from pathlib import Path

from effir.files import write_json, write_text

SCHEMA_KEYS = ("name", "kind", "model", "ndcg@10", "recall@100", "mrr@10", "p_value_vs_full", "params",
               "params_non_embedding", "flops_per_token", "model_bytes", "doc_encode_s", "query_encode_s",
               "doc_speedup", "query_speedup", "index_build_s", "index_bytes", "bytes_per_vector",
               "search_p50_ms", "search_p95_ms", "end_to_end_s")


def _fmt(v, spec=""):
    if v is None:
        return "–"
    return format(v, spec) if spec else str(v)


def _mb(v):
    return None if v is None else v / 1e6


def terminal_table(result: dict) -> str:
    head = (f"{'system':<24} {'nDCG@10':>8} {'R@100':>7} {'p':>7} {'params(M)':>9} {'doc x':>6} {'query x':>7} "
            f"{'docs/s':>7} {'index MB':>8} {'e2e s':>7}")
    lines = [head, "-" * len(head)]
    for r in result["systems"]:
        lines.append(f"{r['name']:<24} {r['ndcg@10']:>8.4f} {r['recall@100']:>7.4f} {_fmt(r['p_value_vs_full'], '.3f'):>7} "
                     f"{_fmt(r['params'] and r['params'] / 1e6, '.1f'):>9} {_fmt(r['doc_speedup'], '.2f'):>6} "
                     f"{_fmt(r['query_speedup'], '.2f'):>7} {_fmt(r.get('docs_per_s'), '.1f'):>7} "
                     f"{_fmt(_mb(r['index_bytes']), '.1f'):>8} {_fmt(r['end_to_end_s'], '.1f'):>7}")
    return "\n".join(lines)


def markdown(result: dict, importance_png: str | None) -> str:
    m, t = result["machine"], result["timing"]
    rows = result["systems"]
    out = [f"# effir bench: {result['dataset']} ({result['split']})", ""]
    out.append(f"Machine: {m['cpu']}, {m['threads']} threads, GPU {m['gpu'] or 'none'}; torch {m['torch']}, "
               f"transformers {m['transformers']}, faiss {m['faiss']}. Precision: {t['precision']}. "
               f"Index: FAISS `{result['factory']}`. Reference for speedups and p-values: `{result['reference']}`.")
    out += ["", "## Quality", "",
            "| system | kind | nDCG@10 | R@100 | MRR@10 | p vs reference (randomization, nDCG@10) |",
            "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['kind']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} | "
                   f"{_fmt(r['p_value_vs_full'], '.4f')} |")
    out += ["", "## Model cost and speed", "",
            f"Speed: {t['docs']} documents and {t['queries']} queries (one at a time) encoded by every system in "
            f"{t['rounds']} interleaved rounds after a warm-up ({t['order']}); speedups are ratios of medians "
            "from that one run.", "",
            "| system | params | non-emb. params | FLOPs/token | FLOP ratio | model MB | doc encode s | docs/s | "
            "doc speedup | query encode s | query speedup |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["kind"] == "bm25":
            continue
        out.append(f"| {r['name']} | {r['params']:,} | {r['params_non_embedding']:,} | {r['flops_per_token']:,} | "
                   f"{_fmt(r.get('flops_ratio'), '.2f')}× | {r['model_bytes'] / 1e6:.1f} | {r['doc_encode_s']:.2f} | "
                   f"{r['docs_per_s']:.1f} | {r['doc_speedup']:.2f}× | {r['query_encode_s']:.2f} | "
                   f"{r['query_speedup']:.2f}× |")
    out += ["", "## Index and search", "",
            "| system | index build s | index MB | bytes/vector | build RSS rise MB | search p50 ms | search p95 ms | "
            "end-to-end s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['index_build_s']:.2f} | {r['index_bytes'] / 1e6:.2f} | "
                   f"{_fmt(r['bytes_per_vector'])} | {_fmt(_mb(r['index_peak_memory_bytes']), '.0f')} | "
                   f"{r['search_p50_ms']:.2f} | {r['search_p95_ms']:.2f} | {r['end_to_end_s']:.1f} |")
    out += ["", "End-to-end: encoding the whole corpus + index build + encoding and searching every judged query "
            "one at a time (BM25: Lucene indexing + search). It is measured when a stage first runs and reused "
            "afterwards; only the interleaved speed figures above are comparable as ratios.", "",
            "![nDCG@10 against document-encoding throughput](pareto.png)", ""]
    if importance_png:
        out += [f"![sublayer importance of {result['reference']}]({importance_png})", ""]
    return "\n".join(out)


def pareto_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in result["systems"]:
        if r.get("docs_per_s") is None:
            ax.axhline(r["ndcg@10"], ls="--", color="grey", lw=1)
            ax.text(0.01, r["ndcg@10"], f" {r['name']}", transform=ax.get_yaxis_transform(), va="bottom", color="grey")
            continue
        ax.scatter(r["docs_per_s"], r["ndcg@10"], s=40, color="tab:red" if r["kind"] == "compressed" else "tab:blue")
        ax.annotate(r["name"], (r["docs_per_s"], r["ndcg@10"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"documents / second ({result['timing']['precision']}, {result['machine']['threads']} threads)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"{result['dataset']}: quality against encoding throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result: dict, out: Path, importance_png: str | None = None) -> None:
    public = {k: v for k, v in result.items() if k != "systems"}
    public["systems"] = [{k: v for k, v in r.items() if k != "per_query"} for r in result["systems"]]
    write_json(out / "report.json", public)
    pareto_plot(result, out / "pareto.png")
    write_text(out / "report.md", markdown(result, importance_png))
    write_json(out / "per_query.json", {r["name"]: r["per_query"] for r in result["systems"]})
