"""parts.json's part timings summarised again with each part's share of the FLOP model (the column
encode_breakdown.py prints since this run): no timing, the same functions on the saved seconds.

    .venv/bin/python reports/llm-precision-parts-2026-12-06/parts/summary_with_flop_shares.py
"""
import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).parent
spec = importlib.util.spec_from_file_location("encode_breakdown", HERE.parents[2] / "bench" / "encode_breakdown.py")
breakdown = importlib.util.module_from_spec(spec)
spec.loader.exec_module(breakdown)

from effir.core.models import resolve  # noqa: E402
from effir.encoder.model import load_model  # noqa: E402

FOLDERS = {"mixed3": "smollm2-ft-3k-mixed3-r64", "d15": "smollm2-effir-d15-mixed3-r64",
           "1.5x": "smollm2-effir-1.5x-gact-mixed3-r64", "2x": "smollm2-effir-2x-gact-mixed3-r64"}
saved = json.loads((HERE / "parts.json").read_text())["parts"]
flops = {name: breakdown.part_flops(load_model(resolve(f"runs/llm/rebuilt/{folder}"), "cpu", align_widths=True)[0],
                                    saved["median_tokens"])
         for name, folder in FOLDERS.items()}
summary = breakdown.part_summary(saved["seconds"], flops)
for name, parts in summary.items():
    for part in ("attention", "mlp"):
        r = parts[part]
        print(f"{name:7} {part:10} time share {r['share']:6.1%}  FLOP share {r['flop_share']:6.1%}  "
              f"speedup {r['speedup']['median']:.2f}x  FLOP ratio {r['flop_ratio']:.2f}x")
(HERE / "summary.json").write_text(json.dumps({"median_tokens": saved["median_tokens"], "figures": summary}, indent=1))
