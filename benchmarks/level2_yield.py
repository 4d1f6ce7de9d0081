"""Level 2 yield, out of sample and about benefit: how often a research session activates a mechanism that beats the
current search in simulation, how new it is, and (optionally) what it gains in real trainings.

Each session runs the real Level-2 flow (flows/research.py: explore, specify, best-of-N generation, static
checks and sandbox validation, simulated benefit on the trace's surrogate and the synthetic landscapes, selection,
repairs; stored in the embedded S3 server, logged to MLflow) on a trace recorded from a real meta-run, cut after some
experiments. Fixtures live in benchmarks/fixtures/level2/<name>/ (spec.json, trace.json, fixture.json); fixture.json
says whether the trace was used while developing the prompts and autofix rules (`development`) or is held out (the
newest also hold the metric's spread across seeds at the defaults and at the trace's best, `seed_spread`).
Development and held-out sessions are reported separately.

Per session: activated or not, the simulated gain with its CI (and per landscape), novelty (the highest similarity
to any library mechanism, worked example or snippet: mechanisms/novelty.py), seconds; every activated mechanism's
source is written to DIR/mechanisms/, and every checked sample's to DIR/samples/. Sessions are written one file each (DIR/sessions/NNN.json) and skipped when
present, so a run resumes, and `--shard i/n` runs every n-th session only (several machines or processes).
Fixtures sort by name (boost_numpy, classify, control, fit_curve, gmm_numpy, graph_color, jobshop_sched, knapsack_ga,
mlp_numpy, queue_sim, rff_ridge, tinygpt, tsp_anneal) and sessions rotate over them, so with `--shard i/13` shard i is
fixture i. `--fixtures a,b` plans sessions over the named fixtures only (the newest held-out ones: with
`--fixtures gmm_numpy,graph_color`, shard 0/2 is gmm_numpy and 1/2 graph_color); its sessions are numbered afresh, so
give each selection its own `--out`.

    python benchmarks/level2_yield.py --sessions 12 [--model local/qwen2.5-coder-1.5b] [--out DIR] [--shard 0/2]
    python benchmarks/level2_yield.py --fixtures gmm_numpy,graph_color --sessions 10 --out DIR [--shard 0/2]
    python benchmarks/level2_yield.py --scripted --sessions 3 --out DIR   # wiring check with the scripted provider

With `--real-gain`, every activated session on a fast workload (benchmarks/real_gain.py: control, fit_curve,
tsp_anneal, knapsack_ga, mlp_numpy, queue_sim, boost_numpy, jobshop_sched, rff_ridge, graph_color, gmm_numpy) also
gets its next generation trained with and without the mechanism, on paired seeds, with the same non-LLM proposer in
both arms; the per-session `real_gain` field and the summary's columns report it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.settings import apply_telemetry_opt_outs, load_settings  # noqa: E402

FIXTURES = ROOT / "benchmarks" / "fixtures" / "level2"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "level2-yield"
SCRIPTED_MECHANISM = '''import random

import helpers as h


class BestNeighbour:
    """Try a step away from the best configuration: one parameter moved from its best value."""

    name = "best_neighbour"

    def propose(self, ctx):
        best = h.best_configs(ctx, 1)
        names = h.editable(ctx)
        if not best or not names:
            return None
        rng = random.Random(ctx["seed"])
        name = rng.choice(names)
        value = h.neighbour(ctx, name, rng, value=best[0]["config"].get(name), scale=0.5)
        if value is None:
            return None
        return {"candidates": [h.candidate(name, value, "a step from the best")]}
'''


def fixtures() -> list[dict[str, Any]]:
    """Every recorded run under benchmarks/fixtures/level2/<name>/ (spec.json + trace.json; fixture.json says whether
    it was used while developing the prompts: absent means it was)."""
    from search.run_spec import MetaRunSpec
    from search.trace import Trace

    found = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        spec = MetaRunSpec.model_validate_json((folder / "spec.json").read_text())
        trace = Trace.model_validate_json((folder / "trace.json").read_text())
        about = json.loads((folder / "fixture.json").read_text()) if (folder / "fixture.json").exists() else {}
        found.append({"name": folder.name, "spec": spec, "trace": trace,
                      "development": bool(about.get("development", True)), "note": about.get("note", "")})
    if len({f["spec"].workload.reference for f in found}) < 3:
        raise SystemExit(f"need recorded traces of at least three workloads under {FIXTURES}")
    return found


def select(found: list[dict[str, Any]], names: list[str] | None) -> list[dict[str, Any]]:
    """The fixtures named (all of them when `names` is None), in their sorted order; an unknown name is refused."""
    if names is None:
        return found
    known = [f["name"] for f in found]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise SystemExit(f"--fixtures: unknown fixture(s) {', '.join(unknown) or '(none named)'}; "
                         f"known: {', '.join(known)}")
    return [f for f in found if f["name"] in names]


def cut(trace, experiments: int):
    """The trace as Level 2 would see it after `experiments` experiments (the last one's generation ends there)."""
    kept = trace.experiments[: experiments + 1]
    last = kept[-1].generation
    return trace.model_copy(update={"experiments": kept,
                                    "generations": [g for g in trace.generations if g.generation <= last]})


def plan_sessions(found: list[dict[str, Any]], sessions: int) -> list[tuple[dict[str, Any], int]]:
    """(fixture, experiments seen) pairs, alternating fixtures, at different cut points of each trace."""
    plan = []
    position = 0
    while len(plan) < sessions:
        for fixture in found:
            length = len(fixture["trace"].decided)
            points = sorted({max(3, length - 2 * k) for k in range(length)}, reverse=True)
            plan.append((fixture, points[position % len(points)]))
            if len(plan) == sessions:
                break
        position += 1
    return plan


def scripted_answers(path: Path, sessions: int) -> Path:
    """One prepared answer per round and session (the provider replays them in order)."""
    answers = {
        "research.explore": [{"ideas": [{"problem": "the best configuration's neighbourhood is not searched",
                                         "evidence": "best", "idea": "try a small step away from the best"}]}] * sessions,
        "research.specify": [{"name": "best_neighbour", "hooks": ["propose"], "state": "none",
                              "behaviour": "propose one parameter moved half a step from the best configuration"}]
        * sessions,
        "research.generate": [f"```python\n{SCRIPTED_MECHANISM}```"] * sessions,
    }
    path.write_text(json.dumps({"answers": answers}))
    return path


def _commit() -> str:
    """The commit measured, marked "+changes" when the work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def session_record(number: int, fixture: dict[str, Any], seen: int, outcome: Any, seconds: float,
                   out: Path) -> dict[str, Any]:
    """What one session reports; the activated mechanism's source goes to DIR/mechanisms/."""
    from mechanisms.novelty import assess

    best = next((s for s in outcome.samples if s["status"] == "accepted"), None)
    activated = outcome.active.mechanisms[-1] if outcome.accepted is not None else None
    source_file = None
    novelty = None
    if activated is not None:
        source_file = f"mechanisms/{number:03d}-{fixture['name']}-{activated.name}.py"
        (out / source_file).parent.mkdir(parents=True, exist_ok=True)
        (out / source_file).write_text(activated.source)
        novelty = assess(activated.source).model_dump()
    simulated = outcome.simulated.model_dump() if outcome.simulated else None
    return {
        "session": number, "fixture": fixture["name"], "workload": fixture["spec"].workload.reference,
        "development": fixture["development"], "experiments_seen": seen, "verdict": outcome.verdict,
        "activated": outcome.accepted is not None, "mechanism": outcome.accepted, "source_file": source_file,
        "simulated": simulated,
        "ci_excludes_0": bool(simulated and simulated["ci_high"] < 0),
        "novelty": novelty, "seconds": round(seconds, 1), "tokens": outcome.usage.total_tokens,
        "llm_calls": outcome.usage.calls, "samples": outcome.samples, "unusable": outcome.unusable,
        "hooks": best["hooks"] if best else [], "decisions_changed": best["decisions_changed"] if best else 0,
    }


def run_session(number: int, fixture: dict[str, Any], seen: int, settings: Any, out: Path) -> dict[str, Any]:
    """One research session on the fixture's trace cut after `seen` experiments, with an empty active set."""
    from flows.research import research
    from infra.mlflow_schema import experiment_name, run_key, run_tags
    from infra.resources import build_workload, open_resources
    from mechanisms.active import ActiveSet

    spec = session_spec(number, fixture, seen)
    trace = cut(fixture["trace"], seen)
    generation = trace.experiments[-1].generation
    workload = build_workload(settings, spec.workload)
    with open_resources(settings, with_store=True, workload=workload) as res:
        parent, _ = res.tracker.ensure_run(experiment_name(spec.name), run_key(spec.meta_run_id),
                                           run_name=spec.meta_run_id, tags=run_tags("meta_run", spec.meta_run_id))
        started = time.perf_counter()
        outcome = research(spec, res, generation=generation, trace=trace, active=ActiveSet(), parent_run_id=parent)
        seconds = time.perf_counter() - started
        write_sample_sources(res.store, outcome.samples, out / "samples" / f"{number:03d}-{fixture['name']}")
    return session_record(number, fixture, seen, outcome, seconds, out)


def write_sample_sources(store: Any, samples: list[dict[str, Any]], folder: Path) -> None:
    """Every checked sample's source, read back from the store (round r, sample n: r<r>-n<n>-<name>.py), so that why
    samples fail can be read from the committed results, not only from a state directory that is gone. A parent
    checked as it is is not written: it is its source at the commit measured (the library's, or a stored version)."""
    from mechanisms.population import AS_IS

    folder.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        if sample.get("change") == AS_IS:
            continue
        stored = store.find(sample["version_id"]) if sample.get("version_id") else None
        if stored is None:
            continue
        source, _ = store.get(stored.name, stored.version_id, stored.status)
        (folder / f"r{sample['round']}-n{sample['sample']}-{stored.name}.py").write_text(source)


def session_spec(number: int, fixture: dict[str, Any], seen: int) -> Any:
    return fixture["spec"].model_copy(update={"meta_run_id": f"yield-{number}-{fixture['name']}-{seen}",
                                              "name": "level2-yield", "levels": ["1", "2"]})


def wants_real_gain(record: dict[str, Any]) -> bool:
    """An activated session on a fast workload whose real gain (with its quality measure) is not recorded yet."""
    from benchmarks.real_gain import FAST_WORKLOADS

    gain = record.get("real_gain")
    # a gain recorded before the quality measure existed is measured again, whole (all three measures)
    return bool(record["activated"]) and record["workload"] in FAST_WORKLOADS and (not gain or "quality_delta" not in gain)


def session_real_gain(record: dict[str, Any], fixture: dict[str, Any], settings: Any, out: Path, state: Path, *,
                      pairs: int, proposer: str) -> dict[str, Any]:
    """The next generation of the session's trace trained with and without its activated mechanism (paired seeds,
    real trainings, the same non-LLM proposer in both arms): benchmarks/real_gain.py."""
    from benchmarks.real_gain import mechanism_from_record, real_gain

    number, seen = record["session"], record["experiments_seen"]
    spec = session_spec(number, fixture, seen)
    return real_gain(spec, cut(fixture["trace"], seen), mechanism_from_record(record, out), settings,
                     state / "real-gain" / f"{number:03d}", label=f"real-{number}-{fixture['name']}-{seen}",
                     pairs=pairs, proposer=proposer)


def recorded(done: Path, fixture: dict[str, Any]) -> dict[str, Any] | None:
    """The session already recorded in `done` (a run resumes; None when there is none), refused when it is another
    fixture's: the folder was written by a run over another `--fixtures` selection, whose sessions number differently."""
    if not done.exists():
        return None
    record: dict[str, Any] = json.loads(done.read_text())
    if record["fixture"] != fixture["name"]:
        raise SystemExit(f"{done} is a session of {record['fixture']}, but this plan puts {fixture['name']} there: "
                         "use another --out for another --fixtures selection")
    return record


def run(sessions: int, model: str | None, out: Path, scripted: bool, shard: tuple[int, int] = (0, 1),
        real: dict[str, Any] | None = None, state: Path | None = None,
        names: list[str] | None = None) -> dict[str, Any]:
    """The planned sessions not recorded yet (this shard's, over the fixtures `names`, default all), then, with `real`
    ({pairs, proposer}), the real gain of every activated session on a fast workload that lacks one; then the summary
    of every session file."""
    found = select(fixtures(), names)  # before anything starts: a bad name fails at once
    apply_telemetry_opt_outs()
    os.chdir(ROOT)  # fixtures name example scripts relative to the repository
    state = state or Path(tempfile.mkdtemp(prefix="bilevel-level2-yield-"))
    state.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"state_dir": state}
    if scripted:
        overrides.update(model="scripted/replay", scripted_answers=scripted_answers(state / "answers.json", sessions))
    elif model:
        overrides["model"] = model
    settings = load_settings(**overrides)
    from infra.prefect_env import apply_prefect_environment
    from infra.prefect_server import supervised_prefect_api

    apply_prefect_environment(settings)
    with supervised_prefect_api(settings.prefect_home, settings.logs_dir / "prefect-server.log"):
        run_sessions(found, sessions, settings, out, shard, real, state)
    return summarise(out, model=settings.model, research_samples=found[0]["spec"].research_samples)


def run_sessions(found: list[dict[str, Any]], sessions: int, settings: Any, out: Path, shard: tuple[int, int],
                 real: dict[str, Any] | None, state: Path) -> None:
    """This shard's planned sessions not recorded yet, each followed by its real gain when `real` asks for it."""
    (out / "sessions").mkdir(parents=True, exist_ok=True)
    for number, (fixture, seen) in enumerate(plan_sessions(found, sessions)):
        done = out / "sessions" / f"{number:03d}.json"
        if number % shard[1] != shard[0]:
            continue  # another shard's session is left to it
        record = recorded(done, fixture)
        if record is None:
            record = run_session(number, fixture, seen, settings, out)
            done.write_text(json.dumps(record, indent=1))
            print(json.dumps({k: record[k] for k in ("session", "fixture", "activated", "seconds", "verdict")}), flush=True)
        if real and wants_real_gain(record):  # written once: a session whose real gain is recorded is skipped
            record["real_gain"] = session_real_gain(record, fixture, settings, out, state, **real)
            done.write_text(json.dumps(record, indent=1))
            print(json.dumps({"session": number, "real_gain": {k: record["real_gain"][k] for k in
                                                               ("delta", "ci_low", "ci_high", "pairs", "seconds")}}),
                  flush=True)


def _group(records: list[dict[str, Any]]) -> dict[str, Any]:
    from mechanisms.population import AS_IS

    activated = [r for r in records if r["activated"]]
    invented = [r for r in activated if r["novelty"] and not r["novelty"]["derived"]]
    as_is = [r for r in activated if any(s["status"] == "accepted" and s.get("change") == AS_IS for s in r["samples"])]
    gains = [r["real_gain"] for r in activated if r.get("real_gain")]
    from benchmarks.real_gain import over_sessions

    real = over_sessions(gains)
    generation = over_sessions(gains, "generation_delta")
    own = over_sessions(gains, "quality_delta")
    return {
        "sessions": len(records), "activated": len(activated),
        "activated_ci_excludes_0": sum(r["ci_excludes_0"] for r in activated),
        "share_ci_excludes_0": round(sum(r["ci_excludes_0"] for r in activated) / len(records), 3) if records else None,
        "invented": len(invented), "parents_as_is": len(as_is), "median_session_s": round(statistics.median(r["seconds"] for r in records), 1) if records else None,
        "real_gain_sessions": real["sessions"], "real_gain_mean": real["mean"],
        "real_gain_ci": [real["ci_low"], real["ci_high"]] if real["sessions"] else None,
        "generation_gain": generation, "quality_gain": own,
    }


def summarise(out: Path, *, model: str, research_samples: int | None = None) -> dict[str, Any]:
    """summary.json and README.md from every session file in DIR/sessions (whichever shard or run wrote them)."""
    from benchmarks.real_gain import over_sessions

    records = [json.loads(p.read_text()) for p in sorted((out / "sessions").glob("*.json"))]
    failures: Counter[str] = Counter()
    for record in records:
        for sample in record["samples"]:
            failures[sample["stage_failed"] or "valid"] += 1
        if record.get("unusable"):  # recorded since c947581
            failures["unusable answer"] += len(record["unusable"])
    summary = {
        "model": model, "commit": _commit(), "research_samples": research_samples,
        "development": _group([r for r in records if r["development"]]),
        "held_out": _group([r for r in records if not r["development"]]),
        "real_gain_all": over_sessions([r["real_gain"] for r in records if r.get("real_gain")]),
        "generation_gain_all": over_sessions([r["real_gain"] for r in records if r.get("real_gain")],
                                             "generation_delta"),
        "quality_gain_all": over_sessions([r["real_gain"] for r in records if r.get("real_gain")], "quality_delta"),
        "in_noise_floors": {key: in_noise_floors(records, key) for key in GAIN_MEASURES},
        "stage_failures": dict(failures), "load_average": [round(x, 2) for x in os.getloadavg()],
        "per_session": records,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "README.md").write_text(readme(summary))
    return summary


def _cell_gain(gain: dict[str, Any] | None) -> str:
    if not gain:
        return "-"
    text = f"{gain['delta']:+.3g} [{gain['ci_low']:+.3g}, {gain['ci_high']:+.3g}]"
    for entry in gain.get("landscapes", []):
        text += f"; {entry['landscape']} {entry['delta']:+.3g} [{entry['ci_low']:+.3g}, {entry['ci_high']:+.3g}]"
    return text


GAIN_MEASURES = ("delta", "generation_delta", "quality_delta")  # benchmarks/real_gain.py: running, generation, quality


def in_noise_floors(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The sessions' real Δ (`key`) in units of each trace's noise floor (the simulation's noise_sd), with its
    bootstrap CI: the only mean over sessions that means something when the fixtures' objectives differ in scale
    (a makespan and an RMSE)."""
    from benchmarks.real_gain import over_sessions

    scaled = [{key: r["real_gain"][key] / r["simulated"]["noise_sd"]} for r in records
              if r.get("real_gain") and r["real_gain"].get(key) is not None and (r.get("simulated") or {}).get("noise_sd")]
    return over_sessions(scaled, key)


def _summary_gain(gain: dict[str, Any] | None) -> str:
    if not gain or not gain["sessions"]:
        return "no session measured yet"
    return f"{gain['sessions']} session(s), mean {gain['mean']}, CI [{gain['ci_low']}, {gain['ci_high']}]"


def readme(summary: dict[str, Any]) -> str:
    lines = [f"# Level 2 yield ({summary['model']})", "",
             f"Measured at commit {summary['commit']}, load average {summary['load_average']} at the end (2 cores). "
             f"Sample verdicts: {summary['stage_failures']}.", ""]
    for group, title in (("held_out", "Held-out traces"), ("development", "Traces used while developing the prompts")):
        g = summary[group]
        lines += [f"**{title}:** {g['activated']} of {g['sessions']} sessions activated a mechanism, "
                  f"{g['activated_ci_excludes_0']} with a simulated-gain CI excluding 0; {g['invented']} activated "
                  f"mechanism(s) invented (similarity < 0.7 to every reference), {g.get('parents_as_is', 0)} a mutation "
                  f"parent as it is; median session {g['median_session_s']} s; "
                  f"real next-generation gain measured in {g['real_gain_sessions']} session(s), mean {g['real_gain_mean']}.", ""]
    every = summary["real_gain_all"]
    lines += [f"**Real next-generation gain** (paired real trainings with and without the activated mechanism, same "
              f"seeds and non-LLM proposer; Δ with minus without, negative: the mechanism helps): "
              f"{every['sessions']} session(s), mean {every['mean']}, 95% bootstrap CI [{every['ci_low']}, "
              f"{every['ci_high']}]. The best value measured within the new generation (whether or not it beats the "
              f"trace's best): mean {summary['generation_gain_all']['mean']}, CI "
              f"[{summary['generation_gain_all']['ci_low']}, {summary['generation_gain_all']['ci_high']}]. "
              f"The final best configurations re-measured on fresh seeds (their own quality, the quantity the "
              f"simulation scores): {_summary_gain(summary.get('quality_gain_all'))}. Means over fixtures whose "
              f"objectives differ in scale mean little; in units of each trace's noise floor: running best "
              f"{_summary_gain(summary['in_noise_floors']['delta'])}; generation best "
              f"{_summary_gain(summary['in_noise_floors']['generation_delta'])}; quality "
              f"{_summary_gain(summary['in_noise_floors']['quality_delta'])}.", ""]
    lines += ["| session | fixture | held out | seen | activated | simulated Δ [CI]; per landscape | novelty | real Δ [CI] | "
              "generation-best Δ | quality Δ | seconds | source | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["per_session"]:
        novelty = (f"{'derived' if r['novelty']['derived'] else 'invented'} ({r['novelty']['closest']}, "
                   f"{r['novelty']['similarity']:.2f})") if r["novelty"] else "-"
        real = r.get("real_gain")
        real_text = (f"{real['delta']:+.3g} [{real['ci_low']:+.3g}, {real['ci_high']:+.3g}] (n={real['pairs']})"
                     if real and real["pairs"] else "-")
        generation = real.get("generation_delta") if real else None
        generation_text = f"{generation:+.3g}" if generation is not None else "-"
        own = real.get("quality_delta") if real else None
        quality_text = f"{own:+.3g}" if own is not None else "-"
        source = f"[{Path(r['source_file']).name}]({r['source_file']})" if r["source_file"] else "-"
        lines.append(f"| {r['session']} | {r['fixture']} | {'no' if r['development'] else 'yes'} | {r['experiments_seen']} | "
                     f"{'yes' if r['activated'] else 'no'} | {_cell_gain(r['simulated'])} | {novelty} | {real_text} | {generation_text} | {quality_text} | "
                     f"{r['seconds']:.0f} | {source} | {r['verdict'][:90].replace('|', '/')} |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=12)
    parser.add_argument("--model", default=None, help="litellm model string (default: the settings' model)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scripted", action="store_true", help="the API-model path through the scripted provider")
    parser.add_argument("--shard", default="0/1", help="i/n: run sessions whose number is i modulo n")
    parser.add_argument("--real-gain", action="store_true", help="train the next generation with and without each "
                        "activated mechanism (fast workloads only: control, fit_curve, tsp_anneal, knapsack_ga, "
                        "mlp_numpy, queue_sim, boost_numpy, jobshop_sched, rff_ridge, graph_color, gmm_numpy)")
    parser.add_argument("--fixtures", default=None, help="comma list of fixture names: plan sessions over these only "
                        "(default: all; numbered afresh, so use its own --out)")
    parser.add_argument("--real-pairs", type=int, default=1, help="paired seeds per session for --real-gain")
    parser.add_argument("--real-proposer", default="tpe", choices=["tpe", "random", "cmaes"],
                        help="the non-LLM proposer of both arms")
    args = parser.parse_args()
    index, _, count = args.shard.partition("/")
    shard = (int(index), int(count or 1))
    if not 0 <= shard[0] < shard[1]:
        raise SystemExit(f"--shard {args.shard}: expected i/n with 0 <= i < n")
    out = args.out or (DEFAULT_OUT.with_name("level2-yield-scripted") if args.scripted else DEFAULT_OUT)
    real = {"pairs": args.real_pairs, "proposer": args.real_proposer} if args.real_gain else None
    names = [n.strip() for n in args.fixtures.split(",") if n.strip()] if args.fixtures is not None else None
    summary = run(args.sessions, args.model, out, args.scripted, shard, real, names=names)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_session"}))


if __name__ == "__main__":
    main()
