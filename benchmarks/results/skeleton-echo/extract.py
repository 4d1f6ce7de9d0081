import json, sys, ast, re, glob
runs = {"/tmp/bilevel-level2-yield-848po7de": "level2-yield-4 sessions 0-2 (53530d1)",
        "/tmp/bilevel-level2-yield-3ypvm3u8": "level2-yield-4 sessions 3-7 (53530d1)",
        "/tmp/bilevel-level2-yield-6d_4sllh": "session-6 development check (level2_yield.py on development fixtures, before 53530d1)"}
HOOKS = ('plan', 'propose', 'screen', 'accept', 'observe')
def trivial(fn):
    body = [b for b in fn.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Return) and (body[0].value is None or (isinstance(body[0].value, ast.Constant) and body[0].value.value is None))
records = []
for d, label in runs.items():
    for f in sorted(glob.glob(f"{d}/mlflow/artifacts/*/*/artifacts/transcript.json")):
        t = json.load(open(f))
        for e in t["transcript"]:
            if e.get("round") != "generate" or e.get("parent") or e.get("repair_round") != 0 or e.get("sample", 0) >= 10:
                continue
            a = e.get("answer") or ""
            m = re.search(r"```python\n(.*?)(```|$)", a, re.S)
            code = m.group(1) if m else a
            try:
                tree = ast.parse(code)
                hooks = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in HOOKS]
                deciding = [h for h in hooks if h.name != "observe"]
                kind = "skeleton given back" if deciding and all(trivial(h) for h in deciding) else "bodies written"
            except SyntaxError:
                kind = "does not parse"
            records.append({"run": label, "mlflow_run": f.split("/")[-3], "sample": e.get("sample"),
                            "temperature": e.get("temperature"), "stage_failed": e.get("stage_failed"),
                            "kind": kind, "answer": a})
from collections import Counter
summary = Counter(r["kind"] for r in records)
json.dump({"how": "every fresh first-round sample (not a mutant, not a repair) in the MLflow transcripts of the runs named; "
           "'skeleton given back': every deciding hook's body is only `return None`, as the skeleton showed it",
           "counts": dict(summary), "records": records}, open(sys.argv[1], "w"), indent=1)
print(dict(summary), len(records))
