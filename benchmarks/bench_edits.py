"""Collect the edit-mode benchmark (issue 22, item 4) into benchmarks/results/<prefix>/: `block` against `literals` on
paired seeds, per mode the valid share of the LLM's answers, the crash rate of trainings and Δ with its CI, and the
paired difference literals − block.

The study is two runs of `bilevel ablate` with the same options and seeds, one per edit mode, with the ids
`<prefix>-block` and `<prefix>-literals` (see benchmarks/results/bench-edits/README.md); repeat r of both uses seed
first_seed + r, so the meta-runs `<prefix>-block-<arm>-r<r>` and `<prefix>-literals-<arm>-r<r>` are a pair.

    python benchmarks/bench_edits.py --state /path/to/.bilevel --commit $(git rev-parse --short HEAD) [--prefix bench-edits]

Resumable: records already in runs.json are kept (with the commit they were collected at, even when this state
directory no longer holds their meta-run), new finished meta-runs get --commit, and a run's bundle is exported once.
The statistics are rebuilt from runs.json alone, so shards collected from different machines accumulate.

`--block-from bench-search-A` takes the block arm from another study instead of running it: the search benchmark's
arm A ran the same options in block mode (benchmarks/results/bench-edits/README.md). Its meta-run
`bench-search-A-r<r>` is the block run of repeat r: read from its bundle in benchmarks/results/bench-search/runs/, with
the commit and wall seconds that study's runs.json recorded; only `<prefix>-literals` runs are then collected from
--state. Every record carries its spec's conditions, and a pair whose specs differ in anything but the edit mode and
the id is refused.

- Valid share: valid answers / answers asked, summed over a mode's runs. Every experiment records how many times
  the LLM was asked (`proposal_attempts`) and why each refused answer was refused (`proposal_errors`); the
  optimiser's own "found nothing" notes (the hybrid proposer's) are in the same list but were never asked of the LLM.
- Crash rate: crashed or timed-out trainings / trainings (experiments after the baseline that trained something).
- Δ = best − baseline (sign-corrected, negative is better), the mean and bootstrap CI per mode, and the paired test
  of literals − block, from the ablation statistics (reports/stats.py), with each run's noise floor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from infra.bundle import BundleError, read_bundle  # noqa: E402
from reports.stats import ablation_statistics, bootstrap_mean_ci  # noqa: E402
from search.objective import Objective  # noqa: E402
from search.run_spec import MetaRunSpec  # noqa: E402

MODES = ("block", "literals")
REFERENCE, CHALLENGER = MODES
# What must agree between the two runs of a repeat (and across the study) for the modes to be comparable.
PAIRED_FIELDS = ("seed", "workload", "budget_mode", "budget", "generations", "iterations", "model")
STUDY_FIELDS = tuple(field for field in PAIRED_FIELDS if field != "seed")
# Refusals in `proposal_errors` that no LLM answer caused: the optimisers' (search/tpe_proposal.py,
# search/random_proposal.py) notes that they found nothing new. Everything else is a refused LLM answer.
NON_LLM_ERRORS = ("optuna TPE found ", "optuna CMA-ES found ", "no valid untried configuration", "every parameter is frozen")
# What the two runs of a pair may differ in: their ids (and the name the ablation id gives), the edit mode; the seed is
# compared on its own (equal within a pair, one per repeat across the study).
UNPAIRED_SPEC_FIELDS = ("meta_run_id", "name", "seed", "workload.edits")


def spec_conditions(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A meta-run's spec.json as flat `field.subfield: value` conditions, without what a pair may differ in. Read
    through today's MetaRunSpec, so a field an older commit did not write yet takes its default (5ffff0e wrote no
    `workload.edits`: block)."""
    flat: dict[str, Any] = {}
    for key, value in MetaRunSpec.model_validate(dict(spec)).model_dump(mode="json").items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, item in items:
            flat[key if sub is None else f"{key}.{sub}"] = item
    return {key: value for key, value in sorted(flat.items()) if key not in UNPAIRED_SPEC_FIELDS}


def default_condition(key: str) -> Any:
    """Today's MetaRunSpec default of a condition (`field` or `field.subfield`), as spec_conditions writes it; None
    for a field it does not know."""
    top, _, sub = key.partition(".")
    field = MetaRunSpec.model_fields.get(top)
    if field is None or field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    dumped = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    return dumped.get(sub) if sub and isinstance(dumped, dict) else None if sub else dumped


def condition_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """`field (a vs b)` for every condition two records' specs disagree on. A condition a record lacks (collected
    before the spec had that field) counts as its default, as spec_conditions reads an older spec.json."""
    def value(record: Mapping[str, Any], key: str) -> str:
        return json.dumps(record[key] if key in record else default_condition(key))

    return [f"{key} ({value(a, key)} vs {value(b, key)})" for key in sorted(set(a) | set(b)) if value(a, key) != value(b, key)]


def llm_refusals(errors: Iterable[str]) -> int:
    """How many of an experiment's proposal errors were refused LLM answers."""
    return sum(1 for error in errors if not error.startswith(NON_LLM_ERRORS))


def trace_counts(trace: Mapping[str, Any]) -> dict[str, int]:
    """LLM answers asked and refused, trainings, crashes and invalid experiments of one trace (after the baseline)."""
    decided = trace["experiments"][1:]
    asked = sum(int(e.get("proposal_attempts", 0)) for e in decided)
    refused = sum(min(int(e.get("proposal_attempts", 0)), llm_refusals(e.get("proposal_errors", []))) for e in decided)
    statuses = [e["outcome"]["status"] for e in decided]
    return {"asked": asked, "valid": asked - refused, "experiments": len(decided),
            "invalid": statuses.count("invalid"), "trainings": sum(1 for s in statuses if s != "invalid"),
            "crashes": sum(1 for s in statuses if s in ("crash", "timeout")),
            "llm_trained": sum(1 for e in decided if str(e.get("proposed_by", "")).startswith("llm")
                               and e["outcome"]["status"] != "invalid")}


def run_record(folder: Path, mode: str, commit: str) -> dict[str, Any]:
    """One finished meta-run's record, from its run folder (wall seconds: spec.json written at the start, summary.json
    at the end)."""
    summary = json.loads((folder / "summary.json").read_text())
    return record_of(folder.name, mode, commit, spec=json.loads((folder / "spec.json").read_text()), summary=summary,
                     trace=json.loads((folder / "trace.json").read_text()),
                     model=summary.get("model") or _model_of(folder),
                     wall_seconds=(folder / "summary.json").stat().st_mtime - (folder / "spec.json").stat().st_mtime)


def record_of(meta_run_id: str, mode: str, commit: str, *, spec: Mapping[str, Any], summary: Mapping[str, Any],
              trace: Mapping[str, Any], model: str, wall_seconds: float) -> dict[str, Any]:
    """One finished meta-run's record: what pairs it (its spec's conditions), its outcome, its counts, its cost."""
    objective = Objective.model_validate(summary["objective"])
    recorded_mode = spec["workload"].get("edits", "block")
    if recorded_mode != mode:
        raise SystemExit(f"{meta_run_id} ran with edits = {recorded_mode}, but it was collected as {mode}: collect it "
                         "under the right prefix, or rerun it")
    repeat = int(meta_run_id.rsplit("-r", 1)[1])
    return {
        "meta_run_id": meta_run_id, "mode": mode, "repeat": repeat, "seed": spec["seed"], "commit": commit,
        "workload": spec["workload"]["reference"], "budget_mode": spec["budget"]["mode"],
        "budget": spec["budget"]["value"], "generations": spec["generations"], "iterations": spec["iterations"],
        "proposer": spec["proposer"], "model": model,
        "objective": objective.model_dump(mode="json"), "baseline": summary["baseline_value"],
        "best": summary["best_value"], "delta": round(objective.delta(summary["baseline_value"], summary["best_value"]), 6),
        "noise_floor": summary.get("noise_floor"), **trace_counts(trace), "kept": summary["kept"],
        "llm_calls": summary["llm"]["calls"], "llm_seconds": round(summary["llm"]["seconds"], 1),
        "wall_seconds": round(wall_seconds, 1), "best_changes": summary["best_changes"],
        "conditions": spec_conditions(spec),
    }


def borrowed_block_records(results: Path, block_from: str) -> list[dict[str, Any]]:
    """The block arm taken from another study's results folder: every meta-run `<block_from>-r<r>` its runs.json
    lists, read from its bundle (runs/<id>.tar.gz) with the commit and wall seconds that runs.json recorded (the
    bundle's files carry no times)."""
    listed = results / "runs.json"
    if not listed.is_file():
        raise SystemExit(f"--block-from {block_from}: no runs.json in {results} (collect that study first)")
    pattern = re.compile(rf"{re.escape(block_from)}-r\d+")
    records = []
    for entry in json.loads(listed.read_text()):
        meta_run_id = entry["meta_run_id"]
        if not pattern.fullmatch(meta_run_id):
            continue
        try:
            run = read_bundle(results / "runs" / f"{meta_run_id}.tar.gz").runs.get(meta_run_id)
        except BundleError as error:
            raise SystemExit(f"--block-from {block_from}: {error}") from None
        if run is None or not run.finished:
            raise SystemExit(f"--block-from {block_from}: the bundle of {meta_run_id} holds no finished meta-run")
        files = run.files
        records.append(record_of(meta_run_id, REFERENCE, entry["commit"], spec=files["spec.json"],
                                 summary=files["summary.json"], trace=files["trace.json"],
                                 model=str(files.get("settings.json", {}).get("model", "")),
                                 wall_seconds=entry["wall_seconds"]))
    return records


def _model_of(folder: Path) -> str:
    """The LLM of a meta-run, from its ablation's manifest (summaries do not name it)."""
    ablation = folder.name.rsplit("-", 2)[0]
    manifest = folder.parent.parent / "ablations" / ablation / "manifest.json"
    return str(json.loads(manifest.read_text()).get("model", "")) if manifest.is_file() else ""


def merged_records(earlier: Sequence[Mapping[str, Any]], found: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """runs.json after a collection: every earlier record kept (its commit too), the new ones added; sorted."""
    by_id = {record["meta_run_id"]: dict(record) for record in found}
    for record in earlier:
        fresh = by_id.get(record["meta_run_id"])
        by_id[record["meta_run_id"]] = dict(record) if fresh is None else {**fresh, "commit": record["commit"]}
    return sorted(by_id.values(), key=lambda r: (MODES.index(r["mode"]), r["repeat"]))


def pairing_problems(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why these runs do not make one paired study (empty when they do): conditions that differ across the study, two
    runs of one mode in a repeat, or the two runs of a repeat on different seeds or with specs that differ in more than
    the edit mode and the id."""
    problems = []
    for field in STUDY_FIELDS:
        values = sorted({json.dumps(r[field]) for r in records})
        if len(values) > 1:
            problems.append(f"{field} differs between runs: {', '.join(values)}")
    by_repeat: dict[int, dict[str, Mapping[str, Any]]] = {}
    for record in records:
        earlier = by_repeat.setdefault(record["repeat"], {}).get(record["mode"])
        if earlier is not None:
            problems.append(f"repeat {record['repeat']} has two {record['mode']} runs: {earlier['meta_run_id']} and "
                            f"{record['meta_run_id']}")
        by_repeat[record["repeat"]][record["mode"]] = record
    for repeat, pair in sorted(by_repeat.items()):
        seeds = {mode: r["seed"] for mode, r in pair.items()}
        if len(set(seeds.values())) > 1:
            problems.append(f"repeat {repeat} ran on different seeds: {seeds}")
        if len(pair) == 2:
            block, literals = pair[REFERENCE], pair[CHALLENGER]
            unspecified = [r["meta_run_id"] for r in (block, literals) if "conditions" not in r]
            if unspecified:
                problems.append(f"repeat {repeat}: {', '.join(unspecified)} has no recorded spec conditions (collect "
                                "it again from its run folder or bundle)")
            elif differences := condition_differences(block["conditions"], literals["conditions"]):
                problems.append(f"repeat {repeat}: {block['meta_run_id']} and {literals['meta_run_id']} differ in more "
                                f"than the edit mode and id: {', '.join(differences)}")
    return problems


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _interval(values: Sequence[float]) -> dict[str, float] | None:
    ci = bootstrap_mean_ci(values)
    return None if ci is None else ci.model_dump()


def edit_statistics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per mode: valid share, crash rate, Δ (mean, CI, noise floor); and the paired differences literals − block of
    Δ (the ablation's rank test and CI), of the valid share and of the crash rate. Pure: runs.json in, JSON out."""
    problems = pairing_problems(records)
    if problems:
        raise ValueError("not one paired study: " + "; ".join(problems))
    if not records:
        raise ValueError("no finished meta-run to collect")
    objective = Objective.model_validate(records[0]["objective"])
    repeats = max(r["repeat"] for r in records) + 1
    by_mode = {mode: {r["repeat"]: r for r in records if r["mode"] == mode} for mode in MODES}
    delta_stats = ablation_statistics(
        {mode: [(runs[i]["baseline"], runs[i]["best"]) if i in runs else None for i in range(repeats)]
         for mode, runs in by_mode.items()},
        [REFERENCE], objective=objective,
        noise_floors={mode: [runs[i]["noise_floor"] if i in runs else None for i in range(repeats)]
                      for mode, runs in by_mode.items()})
    modes: dict[str, Any] = {}
    for mode, runs in by_mode.items():
        chosen = list(runs.values())
        asked, valid = sum(r["asked"] for r in chosen), sum(r["valid"] for r in chosen)
        trainings, crashes = sum(r["trainings"] for r in chosen), sum(r["crashes"] for r in chosen)
        arm = delta_stats.arm(mode)
        modes[mode] = {
            "runs": len(chosen), "repeats": sorted(runs), "asked": asked, "valid": valid,
            "valid_share": _share(valid, asked), "trainings": trainings, "crashes": crashes,
            "crash_rate": _share(crashes, trainings), "invalid": sum(r["invalid"] for r in chosen),
            "delta_mean": arm.mean, "delta_median": arm.median, "delta_ci": arm.ci.model_dump() if arm.ci else None,
            "delta_ci_note": arm.ci_note, "noise_floor": arm.noise_floor,
        }
    paired = sorted(set(by_mode[REFERENCE]) & set(by_mode[CHALLENGER]))
    comparison = delta_stats.comparison(CHALLENGER, REFERENCE)
    delta_diffs = [by_mode[CHALLENGER][i]["delta"] - by_mode[REFERENCE][i]["delta"] for i in paired]
    differences: dict[str, Any] = {
        "pairs": len(paired), "delta": comparison.model_dump(mode="json"), "delta_per_pair": delta_diffs,
        "delta_mean": sum(delta_diffs) / len(delta_diffs) if delta_diffs else None,
        # Same seed, same unedited script: the two baselines of a pair should measure the same (a nondeterministic
        # training would show here, and widen every paired difference).
        "baselines_differ": [i for i in paired
                             if abs(by_mode[CHALLENGER][i]["baseline"] - by_mode[REFERENCE][i]["baseline"]) > 1e-9],
        "baseline_max_difference": max((abs(by_mode[CHALLENGER][i]["baseline"] - by_mode[REFERENCE][i]["baseline"])
                                        for i in paired), default=None)}
    for name, part, whole in (("valid_share", "valid", "asked"), ("crash_rate", "crashes", "trainings")):
        values = [_share(by_mode[CHALLENGER][i][part], by_mode[CHALLENGER][i][whole]) for i in paired]
        bases = [_share(by_mode[REFERENCE][i][part], by_mode[REFERENCE][i][whole]) for i in paired]
        diffs = [v - b for v, b in zip(values, bases, strict=True) if v is not None and b is not None]
        differences[name] = {"per_pair": diffs, "mean": sum(diffs) / len(diffs) if diffs else None,
                             "ci": _interval(diffs)}
    missing = {mode: [i for i in range(repeats) if i not in by_mode[mode]] for mode in MODES}
    return {"objective": objective.model_dump(mode="json"), "reference": REFERENCE, "challenger": CHALLENGER,
            "repeats_seen": repeats, "missing": {m: v for m, v in missing.items() if v}, "modes": modes,
            "literals_minus_block": differences}


def summary_markdown(stats: Mapping[str, Any], records: Sequence[Mapping[str, Any]], title: str) -> str:
    """The tables a reader wants first: per mode, the paired differences, and per run."""
    def num(value: Any, spec: str = ".4f") -> str:
        return "–" if value is None else format(value, spec)

    def ci(interval: Mapping[str, float] | None) -> str:
        return "undefined (n < 3)" if interval is None else f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"

    lines = [f"# {title}", "", "Generated by benchmarks/bench_edits.py from runs.json; do not edit by hand.", ""]
    if stats["missing"]:
        lines += [f"**Partial**: missing repeats {json.dumps(stats['missing'])}.", ""]
    lines += ["| mode | runs | valid share (valid / asked) | crash rate (crashes / trainings) | invalid | Δ mean | Δ CI | "
              "noise floor |", "|---|---|---|---|---|---|---|---|"]
    for mode, item in stats["modes"].items():
        lines.append(f"| {mode} | {item['runs']} | {num(item['valid_share'], '.3f')} ({item['valid']} / {item['asked']}) | "
                     f"{num(item['crash_rate'], '.3f')} ({item['crashes']} / {item['trainings']}) | {item['invalid']} | "
                     f"{num(item['delta_mean'])} | {ci(item['delta_ci'])} | {num(item['noise_floor'])} |")
    diff = stats["literals_minus_block"]
    delta = diff["delta"]
    lines += ["", f"Paired differences literals − block over {diff['pairs']} pair(s) (negative Δ is better):", "",
              f"- Δ: mean {num(diff['delta_mean'], '+.4f')}, CI {ci(delta['ci'])}, {delta['test']}, "
              f"p = {num(delta['p_value'], '.3g')}, verdict: {delta['verdict']} ({delta['reason']})",
              f"- valid share: mean {num(diff['valid_share']['mean'], '+.3f')}, CI {ci(diff['valid_share']['ci'])}",
              f"- crash rate: mean {num(diff['crash_rate']['mean'], '+.3f')}, CI {ci(diff['crash_rate']['ci'])}",
              f"- pairs whose two baselines differ: {diff['baselines_differ'] or 'none'}"
              + (f" (largest difference {diff['baseline_max_difference']:.2g})" if diff['baselines_differ'] else ""),
              "",
              "| meta-run | seed | commit | baseline | best | Δ | noise floor | valid / asked | crashes / trainings | "
              "LLM calls, s | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['meta_run_id']} | {r['seed']} | {r['commit']} | {r['baseline']:.4f} | {r['best']:.4f} | "
                     f"{r['delta']:+.4f} | {num(r['noise_floor'])} | {r['valid']} / {r['asked']} | "
                     f"{r['crashes']} / {r['trainings']} | {r['llm_calls']}, {r['llm_seconds']} | {r['wall_seconds']} |")
    return "\n".join(lines) + "\n"


def bilevel(*args: str, state: Path) -> str:
    env = {**os.environ, "BILEVEL_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"bilevel {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def finished_runs(state: Path, prefix: str, arm: str, modes: Sequence[str] = MODES) -> list[tuple[Path, str]]:
    """(folder, mode) of every meta-run of the study in these modes that finished (stop reason `finished`) in this
    state dir."""
    found = []
    for mode in modes:
        for summary in sorted((state / "runs").glob(f"{prefix}-{mode}-{arm}-r*/summary.json")):
            if json.loads(summary.read_text()).get("stop_reason", "finished") == "finished":
                found.append((summary.parent, mode))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="the state directory the two ablations ran in")
    parser.add_argument("--commit", required=True, help="the commit the newly finished meta-runs ran at")
    parser.add_argument("--prefix", default="bench-edits", help="ablation ids <prefix>-block and <prefix>-literals")
    parser.add_argument("--arm", default="A", help="the ablation arm both runs used")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<prefix>")
    parser.add_argument("--title", default="Edit modes: block against literals (issue 22)")
    parser.add_argument("--block-from", default=None,
                        help="take the block arm from another study's meta-runs <BLOCK_FROM>-r<r> (e.g. bench-search-A) "
                             "instead of <prefix>-block; only <prefix>-literals is collected from --state")
    parser.add_argument("--block-results", type=Path, default=None,
                        help="that study's results folder (runs.json, runs/*.tar.gz); default: "
                             "benchmarks/results/<BLOCK_FROM without its arm>")
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / args.prefix
    (out / "runs").mkdir(parents=True, exist_ok=True)
    earlier = json.loads((out / "runs.json").read_text()) if (out / "runs.json").exists() else []
    finished = finished_runs(args.state, args.prefix, args.arm, (CHALLENGER,) if args.block_from else MODES)
    found = [run_record(folder, mode, args.commit) for folder, mode in finished]
    if args.block_from:
        results = args.block_results or ROOT / "benchmarks" / "results" / args.block_from.rsplit("-", 1)[0]
        found += borrowed_block_records(results, args.block_from)
    records = merged_records(earlier, found)
    try:
        stats = edit_statistics(records)
    except ValueError as error:
        raise SystemExit(f"{args.prefix}: {error}") from None
    for folder, _ in finished:
        bundle = out / "runs" / f"{folder.name}.tar.gz"
        if not bundle.exists():
            bilevel("export", folder.name, "--to", str(bundle), state=args.state)
    for mode in MODES:  # each ablation as one bundle (its manifest and runs): `bilevel import` rebuilds its report
        if (args.state / "ablations" / f"{args.prefix}-{mode}").is_dir():
            study = out / f"{args.prefix}-{mode}.tar.gz"
            study.unlink(missing_ok=True)
            bilevel("export", f"{args.prefix}-{mode}", "--to", str(study), state=args.state)
    (out / "runs.json").write_text(json.dumps(records, indent=1) + "\n")
    (out / "statistics.json").write_text(json.dumps(stats, indent=1) + "\n")
    (out / "summary.md").write_text(summary_markdown(stats, records, args.title))
    print(f"{len(records)} finished meta-runs ({len(finished)} in this state dir) collected into {out}")


if __name__ == "__main__":
    main()
