"""The full-versus-compressed report: report.json (for tools), report.md (for people), plots, a terminal table."""

from __future__ import annotations

import json
from pathlib import Path

from effir.core.errors import EffirError
from effir.core.files import atomic_path, write_json, write_text
from effir.eval.results import SystemResult

SCHEMA_KEYS = ("name", "kind", "model", "parent", "trained", "ndcg@10", "recall@100", "mrr@10", "retention",
               "p_value_vs_parent", "p_value_vs_full", "params", "params_non_embedding", "flops_per_token",
               "model_bytes", "doc_encode_s", "query_encode_s", "doc_speedup", "query_speedup", "index_build_s",
               "index_bytes", "bytes_per_vector", "search_p50_ms", "search_p95_ms", "end_to_end_s")


def _fmt(v, spec=""):
    if v is None:
        return "–"
    return format(v, spec) if spec else str(v)


def percent_interval(bounds) -> str:
    """A share's 95 % interval in percent, e.g. `96.4–99.7`; `unbounded` where the denominator's mean is not clearly
    above 0 (significance.share_interval)."""
    low, high = bounds or (None, None)
    return "unbounded" if low is None or high is None else f"{100 * low:.1f}–{100 * high:.1f}"


def _retention(share, interval) -> str:
    """`97.1% (93.4–100.9)`: a share and its interval; the share alone in a report written before intervals were."""
    if share is None:
        return "–"
    return f"{100 * share:.1f}%" + (f" ({percent_interval(interval)})" if interval else "")


def _times(v):
    return "–" if v is None else f"{v:.2f}×"


def _mb(v):
    return None if v is None else v / 1e6


def terminal_table(result: dict) -> str:
    w = max([24] + [len(r.name) for r in result["systems"]])  # long system names keep the columns aligned
    head = (f"{'system':<{w}} {'nDCG@10':>8} {'R@100':>7} {'p':>7} {'params(M)':>9} {'doc x':>6} {'query x':>7} "
            f"{'docs/s':>7} {'index MB':>8} {'e2e s':>7}")
    lines = [head, "-" * len(head)]
    for r in result["systems"]:
        lines.append(f"{r.name:<{w}} {_fmt(r.ndcg_10, '.4f'):>8} {_fmt(r.recall_100, '.4f'):>7} "
                     f"{_fmt(r.p_value_vs_full, '.3f'):>7} "
                     f"{_fmt(r.params and r.params / 1e6, '.1f'):>9} {_fmt(r.doc_speedup, '.2f'):>6} "
                     f"{_fmt(r.query_speedup, '.2f'):>7} {_fmt(r.docs_per_s, '.1f'):>7} "
                     f"{_fmt(_mb(r.index_bytes), '.1f'):>8} {_fmt(r.end_to_end_s, '.1f'):>7}")
    return "\n".join(lines)


def _speed(r, task: str) -> str:
    speedup = getattr(r, f"{task}_speedup")
    if speedup is None:
        return "–"
    lo, hi = getattr(r, f"{task}_speedup_range")
    return f"{speedup:.2f}× ({lo:.2f}–{hi:.2f})"


def _timing_groups(t: dict) -> list[dict]:
    """The run's timing groups when there were several (a single group reads as the plain interleaved run)."""
    groups = t.get("groups") or []
    return groups if len(groups) > 1 else []


def _control_line(t: dict) -> list[str]:
    c = t.get("control")
    if not c:
        return []
    verdict = "within" if c["ok"] else "OUTSIDE — the speed figures of this run are not reliable"
    where = " in every timing group; the reading farthest from 1.00" if _timing_groups(t) else ""
    return [f"Control pair (the reference timed twice, as two systems{where}): documents {c['doc']:.2f}×, queries "
            f"{c['query']:.2f}× one at a time, {c['query_batch']:.2f}× in batches; {verdict} 1.00 ± "
            f"{c['tolerance']:.2f}.", ""]


def _grouping(t: dict) -> str:
    if not _timing_groups(t):
        return ""
    size = t["group_size"]
    return (f", in groups of at most {size} system{'s' if size > 1 else ''}, each group its own interleaved run "
            f"with the reference{' and the control' if t.get('control') else ''}, speedups against the same group's "
            f"reference")


def _groups_list(t: dict) -> list[str]:
    """One line per timing group (when there are several): its systems, its control's readings, and when a group was
    kept from an earlier run of the bench (the same systems, sample, settings and machine), when it was timed."""
    def kept(g):
        return f" (timed {g['timed_at']}, kept from an earlier run of this bench)" if g.get("kept") else ""

    out = []
    for g in _timing_groups(t):
        c = g["control"]
        reading = (f": control {c['doc']:.2f}× / {c['query']:.2f}× / {c['query_batch']:.2f}×"
                   f"{'' if c['ok'] else ' — OUTSIDE'}") if c else ""
        out.append(f"- timing group {g['group']} ({', '.join(g['systems'])}){reading}{kept(g)}")
    only = t.get("groups") or []
    if not out and len(only) == 1 and only[0].get("kept"):
        out.append(f"The timing{kept(only[0])}.")
    return out + [""] if out else []


def _collections_table(result: dict) -> list[str]:
    names = result.get("datasets") or []
    if len(names) < 2:
        return []
    out = ["", "## Per collection", "",
           f"nDCG@10 on each collection (retention against the parent in parentheses, with its 95 % interval) and "
           f"the mean over the {len(names)}. The table above is {names[0]}'s.",
           "", "| system | " + " | ".join(names) + " | average |", "|---|" + "---:|" * (len(names) + 1)]
    for r in result["systems"]:
        cells = []
        for n in names:
            c = r.per_dataset[n]
            keep = f" ({_retention(c['retention'], c.get('retention_ci95'))})" if c.get("retention") else ""
            cells.append(f"{c['ndcg@10']:.4f}{keep}")
        out.append(f"| {r.name} | " + " | ".join(cells) + f" | {r.average['ndcg@10']:.4f} |")
    return out


def _speed_section(result: dict) -> list[str]:
    """Model cost and the interleaved speed figures, one row per encoder."""
    t, rows = result["timing"], result["systems"]
    lengths = t.get("median_tokens") or {}
    out = ["", "## Model cost and speed", ""]
    if not t["docs"]:
        out += [f"Not timed (`--rounds 0`): quality and analytic cost only. FLOP ratios are analytic, at the "
                f"median lengths of the documents and queries sampled for timing ({lengths.get('doc', '–')} document "
                f"tokens, {lengths.get('query', '–')} query tokens).", ""]
    else:
        out += [f"Speed: {t['docs']} documents, {t['queries']} queries one at a time and the same queries in "
                f"batches of {t.get('query_batch', '–')}, encoded by every system in {t['rounds']} interleaved "
                f"rounds after a warm-up ({t['order']}){_grouping(t)}; each speedup is the median of the per-round "
                f"ratios, (min–max) over rounds. FLOP ratios are analytic, at the median lengths of the timing sample "
                f"({lengths.get('doc', '–')} document tokens, {lengths.get('query', '–')} query tokens); "
                f"realised = doc speedup / FLOP ratio.", ""]
        out += _control_line(t) + _groups_list(t)
    out += ["| system | params | non-emb. params | model MB | precision | FLOP ratio doc / query | docs/s | "
            "doc speedup | realised | query speedup (1 at a time) | query speedup (batched) |",
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.params is None or r.kind == "hybrid":  # BM25 has no encoder; a fused run's is its dense half's
            continue
        realised = f"{100 * r.doc_speedup / r.flops_ratio:.0f}%" if r.flops_ratio and r.doc_speedup else "–"
        out.append(f"| {r.name} | {r.params:,} | {r.params_non_embedding:,} | {r.model_bytes / 1e6:.1f} | "
                   f"{_fmt(r.precision)} | {_times(r.flops_ratio)} / {_times(r.query_flops_ratio)} | "
                   f"{_fmt(r.docs_per_s, '.1f')} | {_speed(r, 'doc')} | {realised} | "
                   f"{_speed(r, 'query')} | {_speed(r, 'query_batch')} |")
    return out


def _peer_table(rows, collections: list[str]) -> list[str]:
    """The rows given a --peer: what each keeps of its parent given the same training (the like-for-like control),
    on every collection of the report."""
    with_peer = [r for r in rows if r.peer and r.retention_vs_peer is not None]
    if not with_peer:
        return []
    by_name = {r.name: r for r in rows}
    several = len(collections) > 1

    def on(row, collection) -> dict:  # a row's figures on one collection, under report.json's names
        return row.per_dataset[collection] if several else row.to_json()

    out = ["", "Against the parent given the same training (`--peer`): what the compression costs, with the training "
           "held equal.", "", "| system | peer | " + ("collection | " if several else "") +
           "nDCG@10 | peer's nDCG@10 | retention (95 % interval) | p vs peer |",
           "|---|---|" + ("---|" if several else "") + "---:|---:|---:|---:|"]
    for r in with_peer:
        for name in collections if several else [None]:
            own, peer = on(r, name), on(by_name[r.peer], name)
            out.append(f"| {r.name} | {r.peer} | " + (f"{name} | " if several else "") +
                       f"{own['ndcg@10']:.4f} | {peer['ndcg@10']:.4f} | "
                       f"{_retention(own['retention_vs_peer'], own.get('retention_vs_peer_ci95'))} | "
                       f"{own['p_value_vs_peer']:.4f} |")
    return out


def markdown(result: dict, importance_png: str | None) -> str:
    m, t = result["machine"], result["timing"]
    rows = result["systems"]
    several = "," in t["precision"]  # quantised systems beside full-precision ones
    precision = t["precision"] + (" (each system's in the speed table)" if several else "")
    out = [f"# effir bench: {' + '.join(result.get('datasets') or [result['dataset']])} ({result['split']})", ""]
    out.append(f"Machine: {m['cpu']}, {m['threads']} threads, GPU {m['gpu'] or 'none'}; torch {m['torch']}, "
               f"transformers {m['transformers']}, faiss {m['faiss']}. Precision: {precision}. "
               f"Index: FAISS `{result['factory']}`. Reference for speedups and p-values: `{result['reference']}`.")
    if result.get("speed_only"):
        out += ["", "Speed only (`--speed-only`): no corpus encoded, so no quality, index or search figures here."]
        return "\n".join(out + _speed_section(result) + [""])
    out += ["", "## Quality", "",
            "Retention is nDCG@10 as a share of the parent's (the system it was made from, or trained like), with "
            "its 95 % interval over the queries (Fieller's, for a ratio of paired means); the p-values are paired "
            "randomization tests on per-query nDCG@10.", "",
            "| system | kind | parent | trained | nDCG@10 | R@100 | MRR@10 | retention (95 % interval) | p vs parent "
            "| p vs reference |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.name} | {r.kind} | {_fmt(r.parent)} | {_fmt(r.trained)} | "
                   f"{r.ndcg_10:.4f} | {r.recall_100:.4f} | {r.mrr_10:.4f} | "
                   f"{_retention(r.retention, r.retention_ci95)} | "
                   f"{_fmt(r.p_value_vs_parent, '.4f')} | {_fmt(r.p_value_vs_full, '.4f')} |")
    out += _peer_table(rows, result.get("datasets") or [])
    out += _collections_table(result)
    out += _speed_section(result)
    out += ["", "## Index and search", "",
            "| system | index build s | index MB | bytes/vector | build RSS rise MB | search p50 ms | search p95 ms | "
            "end-to-end s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.name} | {r.index_build_s:.2f} | {r.index_bytes / 1e6:.2f} | "
                   f"{_fmt(r.bytes_per_vector)} | {_fmt(_mb(r.index_peak_memory_bytes), '.0f')} | "
                   f"{r.search_p50_ms:.2f} | {r.search_p95_ms:.2f} | {r.end_to_end_s:.1f} |")
    out += ["", "End-to-end: encoding the whole corpus + index build + encoding and searching every judged query "
            "one at a time (BM25: Lucene indexing + search). It is measured when a stage first runs and reused "
            "afterwards; only the interleaved speed figures above are comparable as ratios.", "",
            f"![{'nDCG@10 against document-encoding throughput' if _timed(result) else 'nDCG@10 (not timed)'}]"
            "(pareto.png)", ""]
    for other in result.get("beside", []):
        out += [f"Beside these in the plot: the compressed rows of `{other['report']}` ({other['dataset']}, "
                f"reference `{other['reference']}`).", "", "| system | parent | retention | doc speedup |",
                "|---|---|---:|---:|"]
        out += [f"| {p['name']} | {_fmt(p['parent'])} | {100 * p['retention']:.1f}% | {p['doc_speedup']:.2f}× |"
                for p in other["systems"]]
        out.append("")
    if importance_png:
        out += [f"![sublayer importance of {result['reference']}]({importance_png})", ""]
    return "\n".join(out)


def _retention_points(systems: list[dict]) -> list[dict]:
    """What each compressed row keeps of the uncompressed model: of its parent; for a row trained after its cut (no
    parent), of the parent given the same training (its --peer); for a row made from such a cut without training (a
    bf16 copy of it), of that cut's peer, as its speed is against the uncompressed reference, not against the cut."""
    by_name = {s["name"]: s for s in systems}
    points = []
    for s in systems:
        retention, parent = s.get("retention"), s.get("parent")
        if retention is None and s.get("retention_vs_peer") is not None:
            retention, parent = s["retention_vs_peer"], s["peer"]
        elif by_name.get(parent, {}).get("peer") in by_name and s.get("ndcg@10") is not None:
            parent = by_name[parent]["peer"]
            retention = s["ndcg@10"] / by_name[parent]["ndcg@10"]
        if s.get("kind") == "compressed" and retention and s.get("doc_speedup"):
            points.append({"name": s["name"], "parent": parent, "retention": retention,
                           "doc_speedup": s["doc_speedup"]})
    return points


def read_report(report_json) -> dict:
    """An `effir bench` report.json, its rows as SystemResults; a clear error naming the file where it is not one."""
    path = Path(report_json)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EffirError(f"{path}: no such report.json") from None
    except json.JSONDecodeError as e:
        raise EffirError(f"{path}: line {e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(data, dict) or not {"dataset", "reference", "systems"} <= data.keys():
        raise EffirError(f"{path}: not an `effir bench` report.json (needs dataset, reference and systems)")
    try:
        return {**data, "systems": [SystemResult.from_json(row) for row in data["systems"]]}
    except (KeyError, TypeError, AttributeError) as e:
        raise EffirError(f"{path}: a row of systems is not a bench row ({e})") from None


def beside_points(report_json) -> dict:
    """The compressed rows of another bench's report.json (retention against its parent, document speedup), to
    plot beside this report's: {"report", "dataset", "reference", "systems": [...]}."""
    data = read_report(report_json)
    return {"report": str(report_json), "dataset": data["dataset"], "reference": data["reference"],
            "systems": _retention_points([r.to_json() for r in data["systems"]])}


def _label_points(ax, points: list[tuple[float, float, str, dict]]) -> None:
    """One label per (x, y, text, style) point, moved apart where they would overlap (adjustText): with twenty
    systems near one speed, labels at a fixed offset cover each other."""
    from adjustText import adjust_text

    texts = [ax.text(x, y, label, **style) for x, y, label, style in points]
    if texts:
        adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "lightgrey", "lw": 0.5})


def _retention_panel(ax, own: list[dict], beside: list[dict]) -> None:
    """Quality kept (nDCG@10 / the uncompressed model's, `_retention_points`) against document speedup: this report's
    compressed rows, filled; the rows of the reports named by --beside, hollow; the uncompressed model at (1, 1)."""
    ax.scatter([1.0], [1.0], s=40, color="black")
    labels = [(1.0, 1.0, "parent", {"fontsize": 8})]
    for p in own:
        ax.scatter(p["doc_speedup"], p["retention"], s=40, color="tab:red")
        labels.append((p["doc_speedup"], p["retention"], p["name"], {"fontsize": 8}))
    for other, color in zip(beside, ("tab:grey", "tab:green", "tab:purple", "tab:orange")):
        for p in other["systems"]:
            ax.scatter(p["doc_speedup"], p["retention"], s=40, facecolors="none", edgecolors=color)
            labels.append((p["doc_speedup"], p["retention"], p["name"], {"fontsize": 7, "color": color}))
    ax.axhline(0.97, ls=":", color="grey", lw=1)
    ax.set_xlabel("document speedup against the reference (measured)")
    ax.set_ylabel("nDCG@10 kept of the uncompressed model's")
    ax.set_title("quality kept against speed" + (" (hollow: --beside reports)" if beside else ""))
    _label_points(ax, labels)


def _timed(result: dict) -> bool:
    """Whether any system has a measured speed (a bench with --rounds 0 has none)."""
    return any(r.docs_per_s is not None for r in result["systems"])


def _quality_bars(ax, result: dict) -> None:
    """Without a timing run (--rounds 0) there is no throughput axis: each system's nDCG@10 as a bar, best first."""
    rows = sorted(result["systems"], key=lambda r: r.ndcg_10)
    ax.barh([r.name for r in rows], [r.ndcg_10 for r in rows],
            color=["tab:red" if r.kind == "compressed" else "tab:blue" for r in rows])
    for i, r in enumerate(rows):
        ax.text(r.ndcg_10, i, f" {r.ndcg_10:.4f}", va="center", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("nDCG@10")
    ax.set_title(f"{result['dataset']}: quality (not timed)")


def _throughput_panel(ax, result: dict) -> None:
    """nDCG@10 against documents per second; rows without a speed (BM25) as dashed horizontal lines."""
    labels = []
    for r in result["systems"]:
        if r.docs_per_s is None:
            ax.axhline(r.ndcg_10, ls="--", color="grey", lw=1)
            ax.text(0.01, r.ndcg_10, f" {r.name}", transform=ax.get_yaxis_transform(), va="bottom", color="grey")
            continue
        ax.scatter(r.docs_per_s, r.ndcg_10, s=40, color="tab:red" if r.kind == "compressed" else "tab:blue")
        labels.append((r.docs_per_s, r.ndcg_10, r.name, {"fontsize": 8}))
    ax.set_xlabel(f"documents / second ({result['timing']['precision']}, {result['machine']['threads']} threads)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"{result['dataset']}: quality against encoding throughput")
    _label_points(ax, labels)


def pareto_plot(result: dict, path: Path) -> None:
    """nDCG@10 against document throughput (first collection; without a timing run, each system's nDCG@10 as a
    bar); with several collections, a panel with each system's nDCG@10 per collection beside its average; with
    compressed rows (or --beside reports), a panel of the quality each keeps of its parent against its document
    speedup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result.get("datasets") or [result["dataset"]]
    several = len(names) > 1
    own, beside = _retention_points([r.to_json() for r in result["systems"]]), result.get("beside", [])
    kept = bool(own or beside)
    panels = 1 + several + kept
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5), squeeze=False)
    axes = axes[0]
    (_throughput_panel if _timed(result) else _quality_bars)(axes[0], result)
    if several:
        import numpy as np

        bars = axes[1]
        systems = result["systems"]
        groups = names + ["average"]
        width = 0.8 / len(systems)
        for j, r in enumerate(systems):
            values = [r.per_dataset[n]["ndcg@10"] for n in names] + [r.average["ndcg@10"]]
            bars.bar(np.arange(len(groups)) + j * width, values, width, label=r.name)
        bars.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups)
        bars.set_ylabel("nDCG@10")
        bars.set_title("per collection and average")
        bars.legend(fontsize=7)
    if kept:
        _retention_panel(axes[-1], own, beside)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_report(result: dict, out: Path, importance_png: str | None = None) -> None:
    public = {k: v for k, v in result.items() if k != "systems"}
    public["systems"] = [r.to_json() for r in result["systems"]]
    write_json(out / "report.json", public)
    if not result.get("speed_only"):  # the plot and the per-query figures are quality's
        pareto_plot(result, out / "pareto.png")
        write_json(out / "per_query.json", {r.name: r.per_query for r in result["systems"]})
    write_text(out / "report.md", markdown(result, importance_png))


def replot(folder) -> Path:
    """Draw a bench report's pareto.png again from its report.json (after a change to the plot, or where a copied
    report lost it); report.md is left as it was written."""
    folder = Path(folder)
    result = read_report(folder / "report.json")
    if result.get("speed_only"):
        raise EffirError(f"{folder / 'report.json'}: a speed-only report (bench --speed-only) has no plot")
    pareto_plot(result, folder / "pareto.png")
    return folder / "pareto.png"
