"""Probe: which mechanism shapes does the simulated benefit reward? library + hand-written, on fixtures at cuts."""
import json, os, sys, tempfile, time
from pathlib import Path
ROOT = Path(os.environ.get("ROOT", "/work/main"))
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(Path(__file__).parent))
os.chdir(ROOT)
from mechs import MECHS
from benchmarks.level2_yield import fixtures, cut
from infra.resources import build_workload
from infra.settings import load_settings
from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.benefit import next_config, simulated_benefit
from mechanisms.replay import ReplaySource
from mechanisms.library import list_library
from search.config import SearchConfig
from search.simulate import SimulationSettings
names = [n for n in sys.argv[1].split(",") if n] if len(sys.argv) > 1 else None
fx_names = [n for n in sys.argv[2].split(",") if n] if len(sys.argv) > 2 else None
cuts = [int(c) for c in sys.argv[3].split(",")] if len(sys.argv) > 3 else [8, 12, 16]
settings = load_settings(state_dir=Path(tempfile.mkdtemp(prefix="probe-")))
sources = {e.name: e.source for e in list_library()}
sources.update({k: v for k, v in MECHS.items() if k not in sources})  # the library version wins once it exists
for fx in fixtures():
    if fx_names and fx["name"] not in fx_names:
        continue
    space = build_workload(settings, fx["spec"].workload).space
    for seen in cuts:
        if seen > len(fx["trace"].decided):
            continue
        trace = cut(fx["trace"], seen)
        config = next_config(trace, SearchConfig())
        for name, src in sources.items():
            if names and name not in names:
                continue
            t = time.time()
            cand = ActiveMechanism.from_source(name, src, version=None, origin="library")
            try:
                g = simulated_benefit(cand, ActiveSet(), trace, space, ReplaySource(meta_run_id="probe"), config,
                                      settings=SimulationSettings(iterations=8, seeds=16))
            except Exception as e:
                print(json.dumps({"fixture": fx["name"], "seen": seen, "mech": name, "error": repr(e)[:300]}), flush=True)
                continue
            print(json.dumps({"fixture": fx["name"], "seen": seen, "mech": name, "delta": round(g.delta, 4),
                              "ci": [round(g.ci_low, 4), round(g.ci_high, 4)], "selectable": g.selectable,
                              "landscapes": {l.landscape: [round(l.delta, 3), round(l.ci_low, 3), round(l.ci_high, 3)] for l in g.landscapes},
                              "changed": g.decisions_changed, "s": round(time.time() - t, 1)}), flush=True)
