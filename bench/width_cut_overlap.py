"""Do two width cuts of the same model keep the same channels? Kept-channel overlap against chance.

Reads the kept channels (`channels.safetensors`) of two cuts made from the same model (e.g. the gate cut
`models/smollm2-effir` and the activation cut `models/smollm2-effir-act`, both of the same d15) and prints, per layer
and in all, how many channels both keep, and how many two independent choices of the same sizes would share on
average (Σ_layers k_a·k_b / width).

    .venv/bin/python bench/width_cut_overlap.py models/smollm2-effir models/smollm2-effir-act
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _full_width(cut: Path) -> int:
    """The uncut MLP width: of the model folder's config, or of an artefact's base model (through base artefacts,
    e.g. a cut of `models/smollm2-ft-3k`)."""
    from effir.compression.artefact import MANIFEST
    from effir.core.models import resolve

    folder = cut
    while not (folder / "config.json").exists():
        base = json.loads((folder / MANIFEST).read_text())["base"]
        folder = Path(base) if (Path(base) / MANIFEST).exists() else Path(resolve(base).path)
    return json.loads((folder / "config.json").read_text())["intermediate_size"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cuts", nargs=2, help="two folders with channels.safetensors, cut from the same model")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    from effir.compression.slim import CHANNELS_FILE, load_channels

    a, b = (load_channels(Path(c) / CHANNELS_FILE) for c in args.cuts)
    if sorted(a) != sorted(b):
        raise SystemExit(f"the cuts gate different layers ({sorted(a)} and {sorted(b)}): not cut from the same model")
    width = _full_width(Path(args.cuts[0]))
    rows, both, chance = [], 0, 0.0
    for i in sorted(a):
        ka, kb = set(a[i][0].tolist()), set(b[i][0].tolist())
        rows.append({"layer": i, "kept_a": len(ka), "kept_b": len(kb), "both": len(ka & kb),
                     "chance": round(len(ka) * len(kb) / width, 1)})
        both += len(ka & kb)
        chance += len(ka) * len(kb) / width
        print(f"MLP {i:>2}: {len(ka)} and {len(kb)} kept, {len(ka & kb)} by both (chance {rows[-1]['chance']})")
    total = {"kept_a": sum(r["kept_a"] for r in rows), "kept_b": sum(r["kept_b"] for r in rows), "both": both,
             "chance": round(chance, 1), "width": width}
    print(f"all: {total['kept_a']} ({args.cuts[0]}) and {total['kept_b']} ({args.cuts[1]}) kept, {both} by both; "
          f"independent choices of these sizes share {chance:.1f} on average")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"cuts": args.cuts, "layers": rows, "total": total}, f, indent=2)


if __name__ == "__main__":
    main()
