"""The reference's and the control's document calls, and their per-round ratios, from first_round.py's files."""
import json
import sys

for path in sys.argv[1:]:
    with open(path) as f:
        run = json.load(f)
    names = list(run["times"])
    reference, control = names[0], names[-1]
    print(path, run["mode"])
    for name in (reference, control):
        passages = [(n, round(s, 2)) for who, n, side, s in run["calls"] if who == name and side == "passage"]
        print("  ", name[-30:].ljust(30), "passage calls (len, s):", passages[:8])
    for task in ("doc", "query", "query_batch"):
        ratios = [round(a / b, 3) for a, b in zip(run["times"][reference][task], run["times"][control][task])]
        print("   ref/control", task, ratios)
