"""Compare the decided experiments of a meta-run in two state dirs (same meta-run id): configs, values, decisions."""
import json, sys
a = json.load(open(f"{sys.argv[1]}/runs/{sys.argv[3]}/trace.json"))
b = json.load(open(f"{sys.argv[2]}/runs/{sys.argv[3]}/trace.json"))
ea, eb = a["experiments"], b["experiments"]
same_cfg = sum(x.get("config") == y.get("config") for x, y in zip(ea, eb))
vals = [(x.get("outcome", {}).get("value"), y.get("outcome", {}).get("value")) for x, y in zip(ea, eb)]
maxdiff = max((abs(p - q) for p, q in vals if p is not None and q is not None), default=None)
kept = sum(x.get("kept") == y.get("kept") for x, y in zip(ea, eb))
print(f"{sys.argv[3]}: {len(ea)} vs {len(eb)} experiments; same config {same_cfg}, same keep {kept}, max |value diff| {maxdiff}")
