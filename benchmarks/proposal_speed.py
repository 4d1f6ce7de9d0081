"""How fast the local model proposes: real proposal prompts of consecutive iterations, from a recorded trace.

The prompts are those the inner loop builds at the last `n_calls` decision points of the recorded make-run trace
(benchmarks/fixtures/level2/tinygpt: spec.json, trace.json), with the settings' proposer (the hybrid adds the
optimiser's suggestions, as in a run). Each is sent once through litellm to the real local model, in order, so the
KV prefix carries over from one iteration to the next as in a run. Prints one JSON object; asserts nothing.

    python benchmarks/proposal_speed.py [--calls 6] [--with-training] [--interleave] [--cold] [--out FILE]

--with-training trains tinygpt (1 thread, back to back) during the calls, as a run does on the other core.
--interleave puts a Level-2 prompt (research: explore) before each proposal, as another level or track would; the
prefix cache (BILEVEL_LLM_PREFIX_CACHE_MB) is what keeps the proposals warm then.
--cold makes the first call evaluate its whole prompt; without it, it restores what an earlier process left on disk
(BILEVEL_LLM_PREFIX_DISK_MB), as a new run does.

Figures: `proposal_median_s` (median wall time of the calls after the first), `first_call_s` (the first call: the
whole prompt evaluated; the model was loaded before, `load_s`), `tokens_per_s` (median generation speed, llama.cpp's
timing), `prompt_tokens_median` and `prompt_tokens_evaluated_median` (prompt tokens not reused from a KV state,
over the calls after the first), the load average while it ran, what a KV snapshot of the last state costs, and
every call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "benchmarks" / "fixtures" / "level2" / "tinygpt"
TRAINING_SECONDS = 30.0  # each background training's time budget (they run back to back)


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

    def figures(self) -> dict[str, float]:
        return {"load_average_min": round(min(self.samples), 2), "load_average_median": round(statistics.median(self.samples), 2),
                "load_average_max": round(max(self.samples), 2)}  # fmt: skip


class BackgroundTraining:
    """tinygpt baseline trainings, one after the other, in a thread (each is its own 1-thread subprocess)."""

    def __init__(self, settings: Any) -> None:
        from workloads.tinygpt.workload import TinyGPT

        self.workload = TinyGPT(settings.cache_dir, device="cpu")
        self.outcomes: list[str] = []
        self.running = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._work = tempfile.TemporaryDirectory(prefix="proposal-speed-train-")

    def _run(self) -> None:
        from search.run_spec import Budget

        source = self.workload.editable_source()
        budget = Budget(mode="time", value=TRAINING_SECONDS)
        while not self._stop.is_set():
            self.running.set()
            outcome = self.workload.run(source, budget, len(self.outcomes), Path(self._work.name) / f"run{len(self.outcomes)}",
                                        TRAINING_SECONDS * 4)
            self.outcomes.append(outcome.status)

    def __enter__(self) -> BackgroundTraining:
        self.workload.prepare()
        self._thread.start()
        self.running.wait(60)
        time.sleep(5.0)  # past the training's start-up (imports, data), into the steps
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._work.cleanup()


def recorded_run() -> tuple[Any, Any]:
    from search.run_spec import MetaRunSpec
    from search.trace import Trace

    spec = MetaRunSpec.model_validate_json((FIXTURE / "spec.json").read_text())
    trace = Trace.model_validate_json((FIXTURE / "trace.json").read_text())
    return spec, trace


def request_at(trace: Any, cut: int, space: Any, meta_run_id: str) -> Any:
    """The proposal request the inner loop makes for experiment `cut`, having seen experiments 0 .. cut-1."""
    from search.context import DecisionPoint
    from search.iteration import ProposalRequest

    generation = [g for g in trace.generations if g.start <= cut][-1]
    local = trace.with_experiments(trace.experiments[:cut])
    point = DecisionPoint(meta_run_id=meta_run_id, run_seed=0, generation=generation.generation, track=0,
                          iteration=cut - generation.start, start=generation.start,
                          visible_from=generation.visible_from, config=generation.config)
    return ProposalRequest(point=point, local=local, state=local.state(), space=space, seq=cut,
                           near=generation.config.near_repeat)


def proposal_call(request: Any, proposer: str, workload_text: str, program: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The messages and schema of the iteration's first LLM call, as tasks/propose.py builds them."""
    from search.prompts import proposal_messages
    from search.proposal import proposal_schema

    if proposer in ("hybrid", "hybrid-cmaes"):
        from search.tpe_proposal import optimiser_note, optimiser_suggestions

        kind = "cmaes" if proposer == "hybrid-cmaes" else "tpe"
        suggested = optimiser_suggestions(request, kind, request.point.hook_seed, count=2)  # type: ignore[arg-type]
        request = request.model_copy(update={"suggested": suggested.candidates,
                                             "optimiser_note": optimiser_note(request, kind)})  # type: ignore[arg-type]
    config = request.point.config
    schema = proposal_schema(request.space.editable(config.frozen), config.max_changes)
    return proposal_messages(request, workload_text=workload_text, program=program), schema


def research_messages(trace: Any, space: Any, workload_text: str) -> list[dict[str, str]]:
    """A Level-2 prompt (research: explore) on the same trace: another kind of prompt sharing no prefix."""
    from mechanisms.api import API_TEXT
    from search.research import LOOP_TEXT, explore_messages, failure_modes

    return explore_messages(api_text=API_TEXT, loop_source=LOOP_TEXT, active=[], stats=failure_modes(trace, space),
                            workload_text=workload_text)


def measure(n_calls: int = 6, *, with_training: bool = False, interleave: bool = False, cold: bool = False) -> dict[str, Any]:
    """Run the benchmark (loads the local model in this process) and return its figures."""
    from infra.settings import apply_telemetry_opt_outs

    apply_telemetry_opt_outs()
    from infra.llm import LLMClient
    from infra.local_llm import register_local_provider, runtime_for
    from infra.resources import build_workload
    from infra.settings import load_settings
    from search.proposal import ProposalError, parse_proposal
    from tasks.propose import PROPOSAL_MAX_TOKENS

    settings = load_settings()
    spec, trace = recorded_run()
    workload = build_workload(settings, spec.workload)
    workload_text = workload.describe(spec.budget.mode)
    register_local_provider(settings)
    runtime = runtime_for(settings)
    client = LLMClient(settings.model, timeout_s=900, retries=0, temperature=settings.llm_temperature)
    runtime.load()
    if cold:
        runtime.forget_prefix()
    cuts = range(max(1, len(trace.experiments) + 1 - n_calls), len(trace.experiments) + 1)
    calls: list[dict[str, Any]] = []
    training = BackgroundTraining(settings) if with_training else None
    with LoadSampler() as load:
        if training is not None:
            training.__enter__()
        try:
            for number, cut in enumerate(cuts):
                request = request_at(trace, cut, workload.space, "proposal-speed")
                if interleave:
                    other = research_messages(trace.with_experiments(trace.experiments[:cut]), workload.space, workload_text)
                    client.complete(other, purpose="research.explore", call_key=f"bench/explore/{cut}", max_tokens=48)
                messages, schema = proposal_call(request, settings.proposer, workload_text, spec.program)
                started = time.perf_counter()
                answer = client.complete(messages, purpose="propose", call_key=f"bench/propose/{cut}", schema=schema,
                                         temperature=request.temperature, max_tokens=PROPOSAL_MAX_TOKENS)
                seconds = time.perf_counter() - started
                try:
                    parse_proposal(answer.text, request.check, max_changes=request.point.config.max_changes)
                    valid = ""
                except ProposalError as error:
                    valid = str(error)[:160]
                result = runtime.last
                assert result is not None
                calls.append({
                    "call": number, "experiments_seen": cut, "seconds": round(seconds, 2),
                    "prompt_tokens": result.prompt_tokens, "evaluated_tokens": result.evaluated_tokens,
                    "restored_tokens": result.restored_tokens, "completion_tokens": result.completion_tokens,
                    "prompt_eval_s": _round(result.prompt_seconds), "generation_s": _round(result.generation_seconds),
                    "tokens_per_s": _round(result.tokens_per_s), "valid": not valid, "refused": valid,
                    "training_running": bool(training and training.running.is_set()),
                    "load_average": round(os.getloadavg()[0], 2), "answer": answer.text[:200],
                })  # fmt: skip
                print(json.dumps({k: v for k, v in calls[-1].items() if k != "answer"}), file=sys.stderr, flush=True)
        finally:
            if training is not None:
                training.__exit__(None, None, None)
    state_cost = kv_state_cost(runtime)
    warm = calls[1:] or calls
    speeds = [c["tokens_per_s"] for c in calls if c["tokens_per_s"]]
    return {
        "model": settings.model, "threads": settings.llm_threads, "cpus": os.cpu_count(),
        "proposer": settings.proposer, "prefix_cache_mb": settings.llm_prefix_cache_mb,
        "with_training": with_training, "interleave": interleave, "cold_first_call": cold, "calls": len(calls),
        "load_s": round(runtime.load_seconds or 0.0, 2),
        "first_call_s": calls[0]["seconds"],
        "first_call_evaluated_tokens": calls[0]["evaluated_tokens"],
        "first_call_restored_tokens": calls[0]["restored_tokens"],
        "proposal_median_s": round(statistics.median(c["seconds"] for c in warm), 2),
        "proposal_max_s": max(c["seconds"] for c in warm),
        "tokens_per_s": round(statistics.median(speeds), 2) if speeds else None,
        "prompt_tokens_median": statistics.median(c["prompt_tokens"] for c in warm),
        "prompt_tokens_evaluated_median": statistics.median(c["evaluated_tokens"] for c in warm),
        "completion_tokens_median": statistics.median(c["completion_tokens"] for c in calls),
        "valid_first_try": sum(c["valid"] for c in calls),
        "trainings_during": training.outcomes if training else [],
        **state_cost,
        **load.figures(),
        "per_call": calls,
    }  # fmt: skip


def kv_state_cost(runtime: Any) -> dict[str, Any]:
    """What keeping the last prompt's KV state costs: its size, a copy out (snapshot) and back (restore)."""
    with runtime._lock:  # the model is idle: the benchmark's calls are done
        llama = runtime._llama
        tokens = [int(t) for t in llama.input_ids[: llama.n_tokens]]
        started = time.perf_counter()
        state, nbytes = llama.kv_snapshot()
        snapshot = time.perf_counter() - started
        started = time.perf_counter()
        llama.kv_restore(tokens, state, nbytes)
        restore = time.perf_counter() - started
    return {"kv_state_tokens": len(tokens), "kv_state_mb": round(nbytes / 1e6, 1), "kv_snapshot_s": round(snapshot, 3),
            "kv_restore_s": round(restore, 3)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--with-training", action="store_true", help="train tinygpt on the other core meanwhile")
    parser.add_argument("--interleave", action="store_true", help="a Level-2 prompt before each proposal")
    parser.add_argument("--cold", action="store_true", help="the first call restores no KV state from disk")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    figures = measure(args.calls, with_training=args.with_training, interleave=args.interleave, cold=args.cold)
    text = json.dumps(figures, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
