"""Does Level 2's simulated benefit see a real one? The search benchmark's paired ground truth (arm `library`, Level 1
with one_factor + tabu + ucb_bandit active, beat arm A, Level 1 alone, in 5 of 5 paired seeds) against the simulated
gain the benefit stage (mechanisms/benefit.py, search/simulate.py) reports for the same mechanisms on A's own traces,
cut where Level 2 decides (after generation 0 and after generation 1), per seed.

Mechanisms: each library mechanism alone, the library set as arm `library` starts it (against no mechanism), and two
controls: a no-op (must simulate as ~0) and `toward_worst` (benchmarks/level2_simulate.py: always proposes a
neighbour of the worst measured config; must simulate as > 0). The controls run trusted, like library code, so the
machine's sandbox does not decide whether they run.

    python benchmarks/simulator_validity.py [--seeds 16] [--out DIR] [--repeats 0-4]

Reads the committed bundles (benchmarks/results/bench-search/runs/*.tar.gz: each holds the meta-run's spec and trace)
directly, without services. Writes DIR/records.json (one record per mechanism, seed and cut) and DIR/summary.json.
No LLM, no training: seconds per simulation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from search.run_spec import MetaRunSpec
    from search.trace import Trace

RUNS = ROOT / "benchmarks" / "results" / "bench-search" / "runs"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "simulator-validity"
LIBRARY_ARM = ("library:one_factor", "library:tabu", "library:ucb_bandit")  # search/ablation.py's arm `library`
CUTS = (0, 1)  # Level 2 decides at the end of generations 0 and 1 of a 3-generation run

NO_OP = '''class NoOp:
    """Control: watches every result and never changes a decision."""

    name = "no_op"

    def __init__(self):
        self.seen = 0

    def observe(self, ctx, result):
        self.seen += 1
'''


def through_generation(trace: Trace, generation: int) -> Trace:
    """The trace as it stood when `generation` ended: its experiments and the records of generations up to it (Level
    2 of that generation had not decided yet, so its end record is dropped too). ValueError when the trace never ran
    that generation."""
    if not any(e.generation == generation for e in trace.decided):
        raise ValueError(f"the trace has no experiment of generation {generation}")
    return trace.model_copy(update={
        "experiments": [e for e in trace.experiments if e.generation <= generation],
        "generations": [g for g in trace.generations if g.generation <= generation],
        "generation_ends": [e for e in trace.generation_ends if e.generation < generation]})


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant or too short."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        position = 0
        while position < len(order):
            end = position
            while end + 1 < len(order) and values[order[end + 1]] == values[order[position]]:
                end += 1
            for k in range(position, end + 1):
                result[order[k]] = (position + end) / 2
            position = end + 1
        return result

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / (sxx * syy) ** 0.5


def sign_agreement(simulated: list[float], real: list[float]) -> int:
    """How many pairs agree in sign (0 counts as neither: a simulated 0 does not agree with a real gain)."""
    return sum(1 for s, r in zip(simulated, real, strict=True) if (s < 0 < -r) or (s > 0 > -r))


def load_run(meta_run_id: str) -> tuple[MetaRunSpec, Trace]:
    """The spec and trace of a committed meta-run bundle."""
    from search.run_spec import MetaRunSpec
    from search.trace import Trace

    with tarfile.open(RUNS / f"{meta_run_id}.tar.gz") as bundle:
        def read(name: str) -> bytes:
            member = bundle.extractfile(f"runs/{meta_run_id}/{name}")
            if member is None:
                raise SystemExit(f"{meta_run_id}: the bundle holds no {name}")
            return member.read()

        return MetaRunSpec.model_validate_json(read("spec.json")), Trace.model_validate_json(read("trace.json"))


def real_gains(repeats: list[int]) -> dict[int, dict[str, Any]]:
    """Per repeat, from the committed traces (negative: library better): `final`, the paired gap library − A of the
    final best; `per_generation`, that gap at each generation's end; `next_generation[g]`, what library's generation
    g+1 improved its own best by, minus what A's did (the nearest real analogue of the simulated gain at cut g, though
    each arm starts from its own best)."""
    found = {}
    for repeat in repeats:
        _, a = load_run(f"bench-search-A-r{repeat}")
        _, lib = load_run(f"bench-search-library-r{repeat}")
        generations = range(max(e.generation for e in a.decided) + 1)
        best_a = [through_generation(a, g).state().best.value for g in generations]
        best_lib = [through_generation(lib, g).state().best.value for g in generations]
        found[repeat] = {
            "final": a.objective.delta(best_a[-1], best_lib[-1]),
            "per_generation": [a.objective.delta(x, y) for x, y in zip(best_a, best_lib, strict=True)],
            "next_generation": [a.objective.delta(best_lib[g], best_lib[g + 1]) - a.objective.delta(best_a[g], best_a[g + 1])
                                for g in generations[:-1]]}
    return found


def candidates() -> dict[str, tuple[str, Any, Any]]:
    """name: (kind, proposed set, current set): each library mechanism and each control added to no mechanism, and
    the library set as arm `library` starts it."""
    from benchmarks.level2_simulate import TOWARD_WORST
    from mechanisms.active import ActiveMechanism, ActiveSet, resolve_initial_set
    from mechanisms.library import list_library

    empty = ActiveSet()
    found: dict[str, tuple[str, Any, Any]] = {}
    for entry in list_library():
        found[entry.name] = ("library", resolve_initial_set([f"library:{entry.name}"], None), empty)
    found["library_set"] = ("library set", resolve_initial_set(list(LIBRARY_ARM), None), empty)
    for name, source, kind in (("no_op", NO_OP, "control: no-op"), ("toward_worst", TOWARD_WORST, "control: harmful")):
        found[name] = (kind, empty.with_added(ActiveMechanism.from_source(name, source, origin="library")), empty)
    return found


def run(repeats: list[int], seeds: int, out: Path, records_name: str = "records.json",
        only: list[str] | None = None) -> dict[str, Any]:
    from flows.inner_loop import replay_source
    from infra.resources import build_workload
    from infra.settings import load_settings
    from mechanisms.benefit import next_config, simulated_set_benefit
    from search.simulate import SimulationSettings

    os.chdir(ROOT)
    settings = load_settings(state_dir=Path(tempfile.mkdtemp(prefix="bilevel-simulator-validity-")))
    real = real_gains(repeats)
    records = []
    spaces: dict[str, Any] = {}
    for repeat in repeats:
        spec, trace = load_run(f"bench-search-A-r{repeat}")
        key = spec.workload.model_dump_json()
        if key not in spaces:
            spaces[key] = build_workload(settings, spec.workload).space
        space = spaces[key]
        simulation = SimulationSettings(iterations=min(64, spec.iterations * spec.tracks), seeds=seeds)  # flows/research.py
        for cut in CUTS:
            seen = through_generation(trace, cut)
            source = replay_source(spec, seen, cut)
            config = next_config(seen, spec.search)
            for name, (kind, proposed, current) in candidates().items():
                if only and name not in only:
                    continue
                started = time.perf_counter()
                gain = simulated_set_benefit(proposed, current, seen, space, source, config, settings=simulation,
                                             screen_rounds=spec.screen_rounds)
                record = {"mechanism": name, "kind": kind, "repeat": repeat, "seed": spec.seed, "cut": cut,
                          "experiments_seen": len(seen.decided), "delta": gain.delta, "ci_low": gain.ci_low,
                          "ci_high": gain.ci_high, "beats_current": gain.beats_current, "harmful_on": gain.harmful_on,
                          "selectable": gain.selectable, "decisions_changed": gain.decisions_changed,
                          "landscapes": {e.landscape: {"delta": e.delta, "ci_low": e.ci_low, "ci_high": e.ci_high}
                                         for e in gain.landscapes},
                          "noise_sd": gain.noise_sd, "headroom": gain.headroom, "per_seed": gain.per_seed,
                          "real_library_minus_a": real[repeat]["final"],
                          "seconds": round(time.perf_counter() - started, 2)}
                records.append(record)
                print(json.dumps({k: record[k] for k in ("mechanism", "repeat", "cut", "delta", "ci_low", "ci_high",
                                                          "selectable", "seconds")}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    part = {"commit": _commit(), "seeds": seeds, "repeats": repeats, "load_average": [round(x, 2) for x in os.getloadavg()],
            "real": real, "calibration": calibration(repeats, seeds), "records": records}
    (out / records_name).write_text(json.dumps(part, indent=1))
    return part


def collect(out: Path) -> dict[str, Any]:
    """Merge every records*.json part under `out` (runs split by repeats) into summary.json and print the table."""
    parts = [json.loads(path.read_text()) for path in sorted(out.glob("records*.json"))]
    if not parts:
        raise SystemExit(f"no records*.json under {out}: run the simulations first")
    records = [r for part in parts for r in part["records"]]
    real = real_gains(sorted({r["repeat"] for r in records}))
    summary = {"commits": sorted({part["commit"] for part in parts}), "seeds": sorted({part["seeds"] for part in parts}),
               "repeats": sorted(real), "cuts": list(CUTS), "real": real,
               "calibration": [c for part in parts for c in part.get("calibration", [])],
               "agreement": agreement(records, real)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table(records, real))
    return summary


def table(records: list[dict[str, Any]], real: dict[int, dict[str, Any]]) -> str:
    """Markdown: one row per (mechanism, cut), the simulated Δ per repeat (* = Level 2 would activate it)."""
    repeats = sorted(real)
    lines = ["| mechanism | cut | " + " | ".join(f"r{r}" for r in repeats) + " | mean | beats | harmful on a landscape "
             "| activated | sign = real final | sign = real next gen. | synthetic mean (harmful) | hartmann6 mean (harmful) |",
             "|---|---|" + "---|" * (len(repeats) + 8)]
    mean = sum(real[r]["final"] for r in repeats) / len(repeats)
    lines.append("| **real library − A, final** | | " + " | ".join(f"{real[r]['final']:+.3f}" for r in repeats)
                 + f" | {mean:+.3f} | | | | | | | |")
    for cut in CUTS:
        values = [real[r]["next_generation"][cut] for r in repeats]
        lines.append(f"| **real library − A, generation {cut + 1}'s own gain** | g{cut} | "
                     + " | ".join(f"{v:+.3f}" for v in values) + f" | {sum(values) / len(values):+.3f} | | | | | | | |")
    summary = agreement(records, real)
    for key, entry in summary.items():
        name, cut = key.rsplit("/g", 1)
        chosen = {r["repeat"]: r for r in records if r["mechanism"] == name and r["cut"] == int(cut)}
        cells = [f"{chosen[r]['delta']:+.3f}{'*' if chosen[r]['selectable'] else ''}" if r in chosen else "" for r in repeats]
        lines.append(f"| {name} | g{cut} | " + " | ".join(cells) + f" | {entry['mean_delta']:+.3f} | {entry['beats']}/{entry['n']} "
                     f"| {entry['harmful_on_any']}/{entry['n']} | {entry['selectable']}/{entry['n']} | "
                     f"{entry['sign_agrees_final']}/{entry['n']} | {entry['sign_agrees_next_generation']}/{entry['n']} | "
                     + " | ".join(_landscape_cell(list(chosen.values()), landscape) for landscape in ("synthetic", "hartmann6"))
                     + " |")
    return "\n".join(lines)


def _landscape_cell(chosen: list[dict[str, Any]], landscape: str) -> str:
    entries = [r["landscapes"][landscape] for r in chosen if landscape in r["landscapes"]]
    if not entries:
        return ""
    harmful = sum(entry["ci_low"] > 0 for entry in entries)
    return f"{sum(entry['delta'] for entry in entries) / len(entries):+.3f} ({harmful}/{len(entries)})"


def calibration(repeats: list[int], seeds: int) -> list[dict[str, Any]]:
    """Is the simulated search without any mechanism as good as the real one? Per repeat and cut: the real gain of
    A's next generation on its best so far, against the simulated one (the no-mechanism arm of the benefit stage:
    the same surrogate, stand-in and decision procedure, search/simulate.py), and how often a proposal improved on
    where the search stood, real and simulated."""
    from infra.resources import build_workload
    from infra.settings import load_settings
    from mechanisms.benefit import next_config
    from search.context import DecisionPoint
    from search.hooks import NoHooks
    from search.iteration import run_iteration
    from search.simulate import RecordedMoves, SurrogateTrainer, next_generation, noise_sd
    from search.surrogate import Surrogate, largest_improvement, training_points

    settings = load_settings(state_dir=Path(tempfile.mkdtemp(prefix="bilevel-simulator-validity-")))
    found = []
    for repeat in repeats:
        spec, trace = load_run(f"bench-search-A-r{repeat}")
        space = build_workload(settings, spec.workload).space
        states = list(trace.states())
        for cut in CUTS:
            seen = through_generation(trace, cut)
            following = [e for e in trace.decided if e.generation == cut + 1]
            real_steps = [trace.objective.delta(states[e.index - 1].current.value, e.measured)
                          for e in following if e.measured is not None]
            real_gain = trace.objective.delta(seen.state().best.value,
                                              through_generation(trace, cut + 1).state().best.value)
            config = next_config(seen, spec.search)
            points, sd = training_points(seen, space.params), noise_sd(seen)
            headroom = max(largest_improvement(seen), sd)
            proposer = RecordedMoves(seen)
            gains, steps = [], []
            for seed in range(seeds):
                surrogate = Surrogate(points, space.params, seed=seed, minimize=trace.objective.minimize, headroom=headroom)
                trainer = SurrogateTrainer(surrogate, sd, seed)
                local, generation = next_generation(seen, config)
                state = local.state()
                start = surrogate.predict(state.best.config)
                for iteration in range(spec.iterations * spec.tracks):
                    point = DecisionPoint(meta_run_id=spec.meta_run_id, run_seed=seed, generation=generation, track=0,
                                          iteration=iteration, start=len(seen), config=config)
                    experiment = run_iteration(local=local, state=state, space=space, point=point, hooks=NoHooks(),
                                               proposer=proposer, train=trainer, seq=iteration,
                                               screen_rounds=spec.screen_rounds, near=config.near_repeat)
                    if experiment.measured is not None:
                        steps.append(trace.objective.delta(state.current.value, experiment.measured))
                    local, state = local.appended(experiment), state.after(experiment)
                gains.append(trace.objective.delta(start, surrogate.predict(state.best.config)))
            found.append({"repeat": repeat, "cut": cut, "real_next_generation_gain": real_gain,
                          "simulated_next_generation_gain": sum(gains) / len(gains),
                          "real_improving": [sum(v < 0 for v in real_steps), len(real_steps)],
                          "simulated_improving": [sum(v < 0 for v in steps), len(steps)],
                          "real_step_median": _median(real_steps), "simulated_step_median": _median(steps),
                          "real_step_p90": _quantile(real_steps, 0.9), "simulated_step_p90": _quantile(steps, 0.9)})
    return found


def _median(values: list[float]) -> float | None:
    return _quantile(values, 0.5)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def agreement(records: list[dict[str, Any]], real: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per (mechanism, cut): mean simulated Δ, how often Level 2 would activate it, sign agreement with the real
    library − A per repeat, and Spearman across repeats."""
    found: dict[str, Any] = {}
    for name in sorted({r["mechanism"] for r in records}):
        for cut in sorted({r["cut"] for r in records}):
            chosen = sorted((r for r in records if r["mechanism"] == name and r["cut"] == cut), key=lambda r: r["repeat"])
            if not chosen:
                continue
            simulated = [r["delta"] for r in chosen]
            final = [real[r["repeat"]]["final"] for r in chosen]
            following = [real[r["repeat"]]["next_generation"][cut] for r in chosen]
            found[f"{name}/g{cut}"] = {
                "mean_delta": sum(simulated) / len(simulated), "beats": sum(r["beats_current"] for r in chosen),
                "selectable": sum(r["selectable"] for r in chosen), "harmful_on_any": sum(bool(r["harmful_on"]) for r in chosen),
                "n": len(chosen), "repeats": [r["repeat"] for r in chosen],
                "sign_agrees_final": sign_agreement(simulated, final), "spearman_final": spearman(simulated, final),
                "sign_agrees_next_generation": sign_agreement(simulated, following),
                "spearman_next_generation": spearman(simulated, following)}
    return found


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def main() -> None:
    from search.ablation import parse_repeats

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16, help="simulated seeds per simulation (Level 2's default)")
    parser.add_argument("--repeats", default="0-4", help="paired repeats of the search benchmark to use")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--records", default="records.json", help="file name of this part's records under --out "
                        "(records*.json: runs split by --repeats are merged by --collect)")
    parser.add_argument("--mechanisms", default="", help="comma-separated: simulate only these (default: all)")
    parser.add_argument("--collect", action="store_true", help="only merge the parts under --out into summary.json")
    args = parser.parse_args()
    if not args.collect:
        only = [name for name in args.mechanisms.split(",") if name]
        unknown = sorted(set(only) - set(candidates()))
        if unknown:
            raise SystemExit(f"unknown mechanisms {unknown}; known: {', '.join(candidates())}")
        run(parse_repeats(args.repeats, 100), args.seeds, args.out, args.records, only)
    collect(args.out)


if __name__ == "__main__":
    main()
