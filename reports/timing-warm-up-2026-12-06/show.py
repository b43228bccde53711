import json, sys
for f in sys.argv[1:]:
    d = json.load(open(f)); calls = d["calls"]
    names = list(d["times"]); ref = names[0]; ctl = names[-1]
    docs = [c for c in calls if c[2] == "passage"]
    print(f, d["mode"])
    for n in (ref, ctl):
        print("  ", n[-30:].ljust(30), "passage calls (len, s):", [(c[1], round(c[3], 2)) for c in docs if c[0] == n][:8])
    r, c = d["times"][ref], d["times"][ctl]
    for task in ("doc", "query", "query_batch"):
        print("   ref/control", task, [round(a / b, 3) for a, b in zip(r[task], c[task])])
