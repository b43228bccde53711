"""Per-call times of a speed-only timing group, to see where the reference's slow first round goes.

    python first_round.py as-is|full-warmup NAME=FOLDER,... OUT.json [BEIR_FOLDER]   (the first system: the reference)

"as-is" is effir.speed.interleaved_timing as it was at commit 73c6525 (warm-up: 1/8 of the documents and a query
batch); "full-warmup" first gives every system one unit of each kind at the shapes timed. Since 2026-12-06
interleaved_timing does that itself, so "as-is" reproduces only at that commit. The systems are loaded as
`effir bench` loads them (the control: the reference loaded a second time), on the bench's timing sample.
"""
import json
import sys
import time

from effir import speed
from effir.core.device import configure_threads
from effir.core.models import resolve
from effir.encoder.model import Encoder

mode, systems, out = sys.argv[1], [s.split("=") for s in sys.argv[2].split(",")], sys.argv[3]
dataset = sys.argv[4] if len(sys.argv) > 4 else "../shared/data/beir/scifact"
configure_threads(2)
encoders = {}
for name, path in systems:
    spec = resolve(path)
    spec.name = name
    encoders[name] = Encoder(spec)
reference = systems[0][0]
encoders[f"{reference}-control"] = Encoder(encoders[reference].spec)
docs, queries = speed.timing_sample(dataset, 64, 128, 0)
calls = []  # (system, texts, side, seconds) for every encode, warm-up included


class Timed:
    def __init__(self, name, encoder):
        self.name, self.encoder = name, encoder

    def encode(self, texts, side="passage"):
        t0 = time.perf_counter()
        self.encoder.encode(texts, side=side)
        calls.append((self.name, len(texts), side, time.perf_counter() - t0))


timed = {n: Timed(n, e) for n, e in encoders.items()}
if mode == "full-warmup":  # one full unit of each kind per system first, then the timing's own warm-up
    for t in timed.values():
        t.encode(docs[:32])
        t.encode(queries[:1], side="query")
        t.encode(queries[:32], side="query")
times = speed.interleaved_timing(timed, docs, queries, rounds=3)
with open(out, "w") as f:
    json.dump({"mode": mode, "calls": calls, "times": times}, f)
for name in timed:
    first = [round(c[3], 2) for c in calls if c[0] == name and c[2] == "passage" and c[1] == 32][:3]
    print(name.ljust(45), "doc rounds", [round(x, 2) for x in times[name]["doc"]], "first doc calls", first)
