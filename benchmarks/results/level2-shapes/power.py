"""Does the simulated gain's CI shrink with more seeds (power), for the shapes with a negative mean at 16 seeds?"""
import json, os, sys, tempfile, time
from pathlib import Path
ROOT = Path("/work/main"); sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(Path(__file__).parent)); os.chdir(ROOT)
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
settings = load_settings(state_dir=Path(tempfile.mkdtemp(prefix="power-")))
sources = {e.name: e.source for e in list_library()}; sources.update(MECHS)
cases = [("control", 10, "knn_screen"), ("control", 14, "knn_screen"), ("fit_curve", 10, "knn_screen"), ("tinygpt", 6, "tabu"),
         ("control", 10, "tabu"), ("fit_curve", 6, "tabu"), ("classify", 10, "knn_screen"), ("fit_curve", 10, "pattern_move")]
fx = {f["name"]: f for f in fixtures()}
for name, seen, mech in cases:
    f = fx[name]; space = build_workload(settings, f["spec"].workload).space; trace = cut(f["trace"], seen)
    t = time.time()
    g = simulated_benefit(ActiveMechanism.from_source(mech, sources[mech], version=None, origin="library"), ActiveSet(), trace, space,
                          ReplaySource(meta_run_id="probe"), next_config(trace, SearchConfig()),
                          settings=SimulationSettings(iterations=8, seeds=64, landscapes=()))
    print(json.dumps({"fixture": name, "seen": seen, "mech": mech, "delta": round(g.delta, 4), "ci": [round(g.ci_low, 4), round(g.ci_high, 4)],
                      "first16": round(sum(g.per_seed[:16]) / 16, 4), "noise_sd": g.noise_sd, "s": round(time.time() - t, 1)}), flush=True)
