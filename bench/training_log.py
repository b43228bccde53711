"""Windowed means of training logs: the figures the README and reports quote as "top-1 0.72 → 0.76 over steps 1–10
and 76–101" or "1 − cos 1.00 → 0.50".

Reads one or more `log.jsonl` files (`compress train`/`slim`/`effir` write one per stage under their work folder; the
reports keep copies) and prints, for each, the mean of every asked key over every asked window of steps (1-based,
inclusive; a window past the log's end is cut to it).

    .venv/bin/python bench/training_log.py reports/llm-d18-gact-distilled-3k-2026-12-05/*-train.log.jsonl \\
        --windows 1-10,76-101 --keys acc,distill
"""

from __future__ import annotations

import argparse
import json


def window_means(rows: list[dict], first: int, last: int, keys: list[str]) -> dict:
    """{key: mean over the rows whose step lies in [first, last]} (None where no row there has the key)."""
    inside = [r for r in rows if first <= r["step"] <= last]
    means = {}
    for key in keys:
        values = [r[key] for r in inside if key in r]
        means[key] = round(sum(values) / len(values), 3) if values else None
    return means


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("logs", nargs="+", help="log.jsonl files")
    ap.add_argument("--windows", default="1-10,76-101", help="comma-separated step ranges, e.g. 1-10,31-40")
    ap.add_argument("--keys", default="acc,distill", help="comma-separated log keys, e.g. acc,distill,l0,info_nce")
    args = ap.parse_args()
    windows = [tuple(int(x) for x in w.split("-")) for w in args.windows.split(",")]
    keys = args.keys.split(",")
    for path in args.logs:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        print(f"{path} ({len(rows)} steps)")
        for first, last in windows:
            means = window_means(rows, first, last, keys)
            print(f"  steps {first}–{min(last, rows[-1]['step'])}: "
                  + "   ".join(f"{k} {v}" for k, v in means.items()))


if __name__ == "__main__":
    main()
