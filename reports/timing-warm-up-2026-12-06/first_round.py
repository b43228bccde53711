"""Per-call times of a speed-only timing group, to see where the reference's slow first round goes.

    python first_round.py as-is|full-warmup NAME=FOLDER,... OUT.json   (the first system is the reference)

"as-is" is effir.speed.interleaved_timing as it was at commit 73c6525 (warm-up: 1/8 of the documents and a query
batch); "full-warmup" first gives every system one unit of each kind at the shapes timed. Since 2026-12-06
interleaved_timing does that itself, so "as-is" reproduces only at that commit.
"""
import json, sys, time
import torch
from effir.core.models import resolve
from effir.encoder.model import Encoder
from effir import speed

torch.set_num_threads(2)
mode = sys.argv[1]            # "as-is" or "full-warmup"
systems = [s.split("=") for s in sys.argv[2].split(",")]
encoders = {}
for name, path in systems:
    spec = resolve(path); spec.name = name
    encoders[name] = Encoder(spec)
ref = systems[0][0]
encoders[f"{ref}-control"] = Encoder(encoders[ref].spec)
docs, queries = speed.timing_sample("../shared/data/beir/scifact", 64, 128, 0)
calls = []

class Timed:
    def __init__(self, name, enc):
        self.name, self.enc = name, enc
    def encode(self, texts, side="passage"):
        t0 = time.perf_counter(); self.enc.encode(texts, side=side)
        calls.append((self.name, len(texts), side, time.perf_counter() - t0))

timed = {n: Timed(n, e) for n, e in encoders.items()}
if mode == "full-warmup":  # one full unit of each kind per system first, then the timing's own warm-up
    for t in timed.values():
        t.encode(docs[:32]); t.encode(queries[:1], side="query"); t.encode(queries[:32], side="query")
times = speed.interleaved_timing(timed, docs, queries, rounds=3)
json.dump({"mode": mode, "calls": calls, "times": times}, open(sys.argv[3], "w"))
for name in timed:
    print(name.ljust(45), "doc rounds", [round(x, 2) for x in times[name]["doc"]],
          "first doc calls", [round(c[3], 2) for c in calls if c[0] == name and c[2] == "passage" and c[1] == 32][:3])
