"""Benchmark of the embedded local LLM on tinygpt proposals: latency, first-try validity, load time, KV-prefix gain.

Runs a simulated inner loop: each call sees the trace grown by the previous answers (results come from a
small synthetic response surface, with the occasional crash), exactly as a real run's prompts grow.
Prints figures; asserts nothing. Usage:

    .venv/bin/python benchmarks/local_llm_latency.py [--calls 12] [--replay 5] [--mechanism-trials 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import infra.settings  # noqa: E402,F401  (OMP_WAIT_POLICY and telemetry opt-outs first)
from infra.llm import LLMClient  # noqa: E402
from infra.local_llm import register_local_provider, runtime_for  # noqa: E402
from infra.local_model import ensure_model  # noqa: E402
from infra.settings import Settings, load_settings  # noqa: E402
from mechanisms.sandbox import SandboxError, SandboxHost  # noqa: E402
from search.config import SearchConfig  # noqa: E402
from search.params import ParamSpec  # noqa: E402
from search.prompts import proposal_messages, reask_messages  # noqa: E402
from search.proposal import Proposal, ProposalError, parse_proposal, proposal_schema  # noqa: E402
from search.research import extract_code  # noqa: E402
from search.state import state_from_trace  # noqa: E402
from search.trace import Experiment, RunOutcome, Trace, config_with  # noqa: E402
from workloads.tinygpt.workload import TinyGPT  # noqa: E402

BASELINE_BPB = 2.86
CRASH_TAIL = (
    'Traceback (most recent call last):\n  File "train.py", line 231, in <module>\n'
    "    assert TOTAL_BATCH_SIZE % (DEVICE_BATCH_SIZE * SEQ_LEN) == 0\nAssertionError: "
    "TOTAL_BATCH_SIZE must be a multiple of DEVICE_BATCH_SIZE * SEQ_LEN"
)


# -- a simulated inner loop ---------------------------------------------------------------------------------


def synthetic_val_bpb(config: dict[str, Any], rng: random.Random) -> float | None:
    """A plausible response surface for tinygpt (DESIGN §11): learning rates near 1e-2, Muon, a smaller batch
    help; None (a crash) when the batch does not divide. Only there to make traces look real."""
    if config["TOTAL_BATCH_SIZE"] % (config["DEVICE_BATCH_SIZE"] * config["SEQ_LEN"]):
        return None
    value = BASELINE_BPB
    for name in ("MATRIX_LR", "EMBEDDING_LR", "UNEMBEDDING_LR"):
        value += 0.08 * abs(math.log10(config[name] / 0.01))
    value -= 0.2 if config["OPTIMIZER"] == "muon" else 0.0
    value += 0.05 * abs(math.log2(config["TOTAL_BATCH_SIZE"] / 1024))
    value += 0.04 * abs(config["DEPTH"] - 2)
    return round(value - 0.25 + rng.gauss(0, 0.02), 4)


def baseline_trace(specs: list[ParamSpec]) -> Trace:
    config = {spec.name: spec.value for spec in specs}
    config["ADAM_BETAS"] = list(config["ADAM_BETAS"])
    outcome = RunOutcome(status="ok", val_bpb=BASELINE_BPB, steps=390)
    return Trace(experiments=[Experiment(index=0, config=config, outcome=outcome, kept=True, default_kept=True)])


def record_result(trace: Trace, proposal: Proposal, rng: random.Random) -> Trace:
    """The trace with `proposal` trained on the synthetic surface and kept if it beat the current point."""
    state = state_from_trace(trace)
    config = config_with(state.current.config, proposal.changes)
    value = synthetic_val_bpb(config, rng)
    if value is None:
        outcome = RunOutcome(status="crash", error_tail=CRASH_TAIL, log_tail=CRASH_TAIL)
    else:
        outcome = RunOutcome(status="ok", val_bpb=value, steps=390)
    kept = value is not None and value < state.current.val_bpb
    experiment = Experiment(
        index=len(trace), iteration=len(trace) - 1, changes=proposal.changes, hypothesis=proposal.hypothesis,
        config=config, outcome=outcome, kept=kept, default_kept=kept,
    )  # fmt: skip
    return trace.appended(experiment)


def tinygpt_workload(settings: Settings) -> TinyGPT:
    return TinyGPT.from_settings(settings)


def proposal_request(workload: TinyGPT, trace: Trace, config: SearchConfig) -> list[dict[str, str]]:
    return proposal_messages(
        workload_text=workload.describe(), specs=workload.params(), state=state_from_trace(trace), trace=trace, config=config
    )


# -- measurements -------------------------------------------------------------------------------------------


class LoadSampler:
    """The 1-minute load average, sampled every few seconds in a thread while the benchmark runs."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.samples: list[float] = []
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


@dataclass
class CallRecord:
    seconds: float
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    valid: bool
    error: str = ""
    text: str = ""


@dataclass
class Run:
    first_tries: list[CallRecord] = field(default_factory=list)
    accepted: list[Proposal] = field(default_factory=list)
    repeats: int = 0  # valid proposals whose configuration had been trained already
    reasks: list[CallRecord] = field(default_factory=list)
    prompts: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)


def _ask(client: LLMClient, messages: list[dict[str, str]], schema: dict[str, Any], key: str) -> tuple[Any, float]:
    started = time.perf_counter()
    answer = client.complete(messages, purpose="propose", call_key=key, schema=schema)
    return answer, time.perf_counter() - started


def run_proposals(client: LLMClient, workload: TinyGPT, calls: int, seed: int = 0, runtime: Any = None) -> Run:
    """`calls` iterations of a simulated inner loop; up to two re-asks after an invalid first answer.
    `runtime` (the local model's) adds the count of prompt tokens reused from the KV cache."""
    rng = random.Random(seed)
    specs = workload.params()
    config = SearchConfig()
    schema = proposal_schema(specs, config.frozen)
    trace = baseline_trace(specs)
    run = Run()
    for iteration in range(calls):
        messages = proposal_request(workload, trace, config)
        key = f"bench/s{seed}/i{iteration}/a0"
        run.prompts.append((key, messages))
        proposal = None
        for attempt in range(3):
            answer, seconds = _ask(client, messages, schema, key if attempt == 0 else f"bench/s{seed}/i{iteration}/a{attempt}")
            record = CallRecord(seconds, answer.usage.prompt_tokens, runtime.last.cached_tokens if runtime and runtime.last else 0, answer.usage.completion_tokens, True, text=answer.text)
            try:
                proposal = parse_proposal(answer.text, specs, state_from_trace(trace).current.config, config.frozen)
            except ProposalError as error:
                record.valid, record.error = False, str(error)
            (run.first_tries if attempt == 0 else run.reasks).append(record)
            print(_call_line(iteration, attempt, record), flush=True)
            if proposal is not None:
                break
            messages = reask_messages(messages, answer.text, record.error)
        if proposal is not None:
            run.accepted.append(proposal)
            run.repeats += trace.has_tried(config_with(state_from_trace(trace).current.config, proposal.changes))
            trace = record_result(trace, proposal, rng)
    return run


def _call_line(iteration: int, attempt: int, record: CallRecord) -> str:
    verdict = "valid" if record.valid else f"INVALID: {record.error[:90]}"
    label = f"#{iteration:2d}" if attempt == 0 else f"  re-ask {attempt}"
    return (f"  {label} {record.seconds:5.2f} s  prompt {record.prompt_tokens:4d} (cached {record.cached_tokens:4d})  "
            f"completion {record.completion_tokens:3d}  {verdict}  {record.text[:110]!r}")  # fmt: skip


def replay_without_prefix(client: LLMClient, settings: Settings, prompts: list[tuple[str, list[dict[str, str]]]], schema: dict[str, Any]) -> list[float]:
    """The same first-try prompts (same seeds, so the same answers) with the KV state dropped before each."""
    runtime = runtime_for(settings)
    seconds = []
    for key, messages in prompts:
        runtime.forget_prefix()
        seconds.append(_ask(client, messages, schema, key)[1])
    return seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- mechanism-generation probe (for the Level-2 work; generated code runs only in a limited subprocess) -------

MECHANISM_SYSTEM = "You write small, correct Python classes. You answer with one Python code block and nothing else."
MECHANISM_EXAMPLE = '''class PreferUntried:
    """Choose the first candidate that changes a parameter no experiment has changed yet."""
    name = "prefer_untried"

    def screen(self, ctx, candidates):
        tried = set()
        for experiment in ctx["trace"]:
            tried.update(experiment["changes"])
        for i, candidate in enumerate(candidates):
            if not tried.issuperset(candidate["changes"]):
                return {"choose": i}
        return None'''
MECHANISM_TASK = (
    "A hyperparameter search asks an LLM for several candidate edits and calls `screen(self, ctx, candidates)` "
    "to pick one. Data you get:\n"
    '- ctx["trace"]: list of past experiments, each {"changes": {NAME: value}, "val_bpb": float or None (None = crashed), "kept": bool}\n'
    '- ctx["best_val_bpb"]: float, lower is better\n'
    '- candidates: list of {"changes": {NAME: value}, "hypothesis": str}\n'
    'Return {"choose": i} to pick candidate i, or None for no opinion. Only the Python standard library; no I/O.\n\n'
    "Worked example:\n```python\n" + MECHANISM_EXAMPLE + "\n```\n\n"
    "Now write a different class of about 25 lines: `AvoidCrashes`, which avoids candidates that change a parameter "
    "to a value that crashed before, and otherwise prefers the candidate whose changed parameters have the lowest "
    "mean val_bpb in the trace. Answer with the code only."
)
MECHANISM_CASES = [
    {   # candidate 0 repeats a crashed value: choose 1 (best mean for its parameter) or at least not 0
        "ctx": {"best_val_bpb": 2.6, "trace": [
            {"changes": {"DEVICE_BATCH_SIZE": 64}, "val_bpb": None, "kept": False},
            {"changes": {"MATRIX_LR": 0.01}, "val_bpb": 2.6, "kept": True},
            {"changes": {"DEPTH": 6}, "val_bpb": 2.9, "kept": False}]},
        "candidates": [{"changes": {"DEVICE_BATCH_SIZE": 64}, "hypothesis": "a"},
                       {"changes": {"MATRIX_LR": 0.02}, "hypothesis": "b"},
                       {"changes": {"DEPTH": 8}, "hypothesis": "c"}],
        "sensible": [1],
    },
    {   # no crash involved: the candidate whose parameter has the lowest mean val_bpb (MATRIX_LR) is 1
        "ctx": {"best_val_bpb": 2.6, "trace": [
            {"changes": {"DEPTH": 6}, "val_bpb": 2.9, "kept": False},
            {"changes": {"MATRIX_LR": 0.01}, "val_bpb": 2.6, "kept": True},
            {"changes": {"DEPTH": 3}, "val_bpb": 2.8, "kept": False}]},
        "candidates": [{"changes": {"DEPTH": 2}, "hypothesis": "a"}, {"changes": {"MATRIX_LR": 0.02}, "hypothesis": "b"}],
        "sensible": [1],
    },
    {"ctx": {"best_val_bpb": 2.86, "trace": []}, "candidates": [{"changes": {"DEPTH": 3}, "hypothesis": "a"}], "sensible": [0, None]},
]  # fmt: skip


def probe_mechanism(client: LLMClient, trial: int) -> dict[str, Any]:
    messages = [{"role": "system", "content": MECHANISM_SYSTEM}, {"role": "user", "content": MECHANISM_TASK}]
    started = time.perf_counter()
    answer = client.complete(messages, purpose="mechanism_probe", call_key=f"bench/mechanism/{trial}", max_tokens=700, temperature=0.3)
    report: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 1), "completion_tokens": answer.usage.completion_tokens}
    source = extract_code(answer.text)
    report["lines"] = len(source.splitlines())
    # LLM-written code runs only in the project's sandbox (policy check, lockdown, limits), as in Level 2.
    with SandboxHost(call_timeout_s=5.0) as sandbox:
        try:
            sandbox.load("probe", source)
        except SandboxError as error:
            report["runs"] = f"no ({error.kind}): {str(error).splitlines()[0][:200]}"
            report["source"] = source
            return report
        results = []
        for case in MECHANISM_CASES:
            try:
                results.append(sandbox.call("probe", "screen", [case["ctx"], case["candidates"]]))
            except SandboxError as error:
                results.append({"error": f"{error.kind}: {error}"[:160]})
    report["runs"] = "yes"
    report["answers"] = results
    report["sensible"] = [
        (result.get("choose", "error") if isinstance(result, dict) else result) in case["sensible"]
        for result, case in zip(results, MECHANISM_CASES)
    ]
    report["source"] = source
    return report


# -- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12, help="proposal iterations (>= 10 for the figures)")
    parser.add_argument("--replay", type=int, default=5, help="first-try prompts replayed without KV prefix reuse")
    parser.add_argument("--mechanism-trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    settings = load_settings()
    started = time.perf_counter()
    path = ensure_model(settings)
    print(f"model file: {path} ({time.perf_counter() - started:.2f} s to ensure)")
    register_local_provider(settings)
    runtime = runtime_for(settings)
    client = LLMClient(settings.model, timeout_s=settings.llm_timeout_s, retries=0, temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens)
    workload = tinygpt_workload(settings)
    specs = workload.params()
    figures: dict[str, Any] = {"threads": settings.llm_threads, "context": settings.llm_context, "cpus": os.cpu_count()}

    print("calls (first tries and re-asks):", flush=True)
    with LoadSampler() as load:
        runtime.load()
        figures["load_s"] = round(runtime.load_seconds or 0.0, 2)
        run = run_proposals(client, workload, args.calls, args.seed, runtime)
        replayed = replay_without_prefix(client, settings, run.prompts[1 : 1 + args.replay], proposal_schema(specs)) if args.replay else []
        mechanisms = [probe_mechanism(client, trial) for trial in range(args.mechanism_trials)]
    figures.update(load_average_min=round(min(load.samples), 2), load_average_median=round(statistics.median(load.samples), 2),
                   load_average_max=round(max(load.samples), 2))  # fmt: skip
    if run.first_tries:
        figures.update(proposal_figures(run, replayed))
    print("\nfigures:")
    for key, value in figures.items():
        print(f"  {key:26s} {value}")
    for trial, report in enumerate(mechanisms):
        print(f"\nmechanism probe {trial}: " + json.dumps({k: v for k, v in report.items() if k != "source"}))
        print("  " + report["source"].replace("\n", "\n  "))
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "mechanisms": mechanisms}, indent=2))


def proposal_figures(run: Run, replayed: list[float]) -> dict[str, Any]:
    """Latency, validity and diversity of the first tries; the KV-reuse gain when prompts were replayed."""
    latencies = [record.seconds for record in run.first_tries]
    valid = sum(record.valid for record in run.first_tries)
    figures: dict[str, Any] = {
        "calls": len(latencies),
        "median_s": round(statistics.median(latencies), 2),
        "p90_s": round(percentile(latencies, 0.9), 2),
        "first_call_s": round(latencies[0], 2),
        "warm_median_s": round(statistics.median(latencies[1:]), 2) if len(latencies) > 1 else None,
        "valid_first_try": f"{valid}/{len(latencies)}",
        "valid_first_try_share": round(valid / len(latencies), 3),
        "reasks": len(run.reasks),
        "reasks_valid": sum(record.valid for record in run.reasks),
        "prompt_tokens_median": statistics.median(r.prompt_tokens for r in run.first_tries),
        "cached_tokens_median": statistics.median(r.cached_tokens for r in run.first_tries),
        "completion_tokens_median": statistics.median(r.completion_tokens for r in run.first_tries),
        "distinct_params_changed": len({name for proposal in run.accepted for name in proposal.changes}),
        "repeated_configs": f"{run.repeats}/{len(run.accepted)}",
    }
    if replayed:
        with_reuse = latencies[1 : 1 + len(replayed)]
        print("same prompts without KV prefix reuse: " + ", ".join(f"{s:.2f}" for s in replayed) + " s")
        figures["kv_reuse_median_s"] = round(statistics.median(with_reuse), 2)
        figures["no_reuse_median_s"] = round(statistics.median(replayed), 2)
        figures["kv_reuse_saving_s"] = round(statistics.median(b - a for a, b in zip(with_reuse, replayed)), 2)
    return figures


if __name__ == "__main__":
    main()
