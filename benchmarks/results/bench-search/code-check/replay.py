"""Replay a committed bench-search meta-run's Level-1 decisions with the code of one tree, without LLM or training.

Run with PYTHONPATH=<tree> (f98a648 or HEAD worktree). For every decision point of the recorded trace it calls the
tree's own `run_iteration` with the tree's own proposer (`flows.inner_loop.proposer_for`: hybrid / random / tpe)
and, for the library arm, the tree's mechanism runtime (`mechanisms.active.open_runtime`, the trace's active set),
while
  * the LLM is a fake client that records every call (messages, temperature, max_tokens, schema, stop) and answers
    deterministically from the recorded experiment: a fixed invalid answer for the recorded refusals, then the
    recorded changes when the LLM's proposal was chosen; invalid answers throughout when the optimiser's fallback or
    a mechanism was chosen;
  * training returns the recorded outcome (and the recorded confirmation run).
After each decision the *recorded* experiment is appended, so the replay stays on the recorded path.
Writes <out>/<meta_run_id>.jsonl: one line per LLM call ("call") and one per decision ("decision").

    PYTHONPATH=<tree> python replay.py OUT_DIR RUN_FOLDER ...
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TREE = os.environ["PYTHONPATH"].split(":")[0]
sys.path.insert(0, TREE)

from infra.settings import apply_telemetry_opt_outs, load_settings  # noqa: E402

apply_telemetry_opt_outs()

import tasks.llm_call as llm_call  # noqa: E402
import tasks.propose as tasks_propose  # noqa: E402
from infra.llm import LLMAnswer  # noqa: E402
from infra.resources import build_workload  # noqa: E402
from mechanisms.active import open_runtime, resolve_initial_set  # noqa: E402
from mechanisms.replay import ReplaySource  # noqa: E402
from search.context import DecisionPoint  # noqa: E402
from search.hooks import NoHooks  # noqa: E402
from search.iteration import ProposalRequest, run_iteration  # noqa: E402
from search.run_spec import MetaRunSpec  # noqa: E402
from search.trace import LLMUsage, Trace  # noqa: E402

# Prefect tasks called as plain functions: no flow, no server, no result cache.
llm_call.ask = llm_call.ask.fn
if hasattr(llm_call, "ask_within_context"):
    llm_call.ask_within_context = llm_call.ask_within_context.fn
tasks_propose.propose = tasks_propose.propose.fn

INVALID = "I would change the learning rate."  # no JSON: refused by every version's parser


class FakeLLM:
    """Duck-typed LLMClient: records every call, answers from `self.script`."""

    model = "local/qwen2.5-coder-1.5b"

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.script: list[str] = []

    def context_window(self) -> int:  # HEAD only: the local model registers BILEVEL_LLM_CONTEXT (4096 in the runs)
        return 4096

    def complete(self, messages, *, purpose, call_key, seq=0, schema=None, temperature=None, max_tokens=None,
                 run_id=None, stop=None, **extra):
        answer = self.script.pop(0) if self.script else INVALID
        self.calls.append({"kind": "call", "purpose": purpose, "call_key": call_key, "seq": seq,
                           "temperature": temperature, "max_tokens": max_tokens, "stop": stop,
                           "schema": json.dumps(schema, sort_keys=True), "extra": sorted(extra),
                           "messages": messages, "answer": answer})
        return LLMAnswer(text=answer, usage=LLMUsage(calls=1), model=self.model)


class FakeRes:
    def __init__(self, workload, llm, settings) -> None:
        self.workload, self.llm, self.settings = workload, llm, settings


def truncated(trace: Trace, generation: int, upto: int) -> Trace:
    """The trace as it stood when generation `generation` began (experiments before `upto`)."""
    return trace.model_copy(update={
        "experiments": trace.experiments[:upto],
        "generations": [g for g in trace.generations if g.generation <= generation],
        "generation_ends": [e for e in trace.generation_ends if e.generation < generation],
    })


def intended(recorded, point, local, state, space, config) -> dict:
    """The LLM's answer behind a recorded proposal: the recorded changes, or, where the space's constraint repair
    added a parameter to them (more changes than allowed), the changes without the one whose repair gives them back."""
    changes = dict(recorded.changes)
    if len(changes) <= config.max_changes:
        return changes
    request = ProposalRequest(point=point, local=local, state=state, space=space, near=config.near_repeat)
    for name in changes:
        answer = {k: v for k, v in changes.items() if k != name}
        try:
            if request.check(answer) == changes:
                return answer
        except Exception:
            continue
    return changes


def replay(folder: Path, out: Path) -> None:
    from flows.inner_loop import proposer_for

    settings = load_settings()
    spec = MetaRunSpec.model_validate_json((folder / "spec.json").read_text())
    trace = Trace.model_validate_json((folder / "trace.json").read_text())
    workload = build_workload(settings, spec.workload)
    llm = FakeLLM()
    res = FakeRes(workload, llm, settings)
    proposer = proposer_for(spec, res)
    space = workload.space
    lines: list[dict] = []
    for start in trace.generations:
        g = start.generation
        local = truncated(trace, g, start.start)
        recorded_gen = [e for e in trace.experiments if e.generation == g and e.index >= start.start]
        source = ReplaySource(meta_run_id=spec.meta_run_id, run_seed=spec.seed, fallback_config=start.config,
                              restart_each_generation=spec.restart_each_generation)
        active = start.active
        if active is None:  # traces of 5ffff0e record no active set: the spec's initial set, or the last review
            # the reviews' reverts are not recorded either: keep the mechanisms the generation's first experiment ran
            ran = {m.name for m in recorded_gen[0].mechanisms} if recorded_gen else set()
            initial = resolve_initial_set(spec.mechanisms, None)
            active = initial.model_copy(update={"mechanisms": [m for m in initial.mechanisms if m.name in ran]})
        runtime = open_runtime(active, local, space, source, allow_weak_sandbox=True, time_budget_s=3600.0)
        hooks = runtime if runtime is not None else NoHooks()
        state = local.state()
        try:
            for iteration, recorded in enumerate(recorded_gen):
                point = DecisionPoint(meta_run_id=spec.meta_run_id, run_seed=spec.seed, generation=g, track=0,
                                      iteration=iteration, start=start.start, visible_from=start.visible_from,
                                      config=start.config)
                answer = json.dumps({"changes": intended(recorded, point, local, state, space, start.config),
                                     "hypothesis": recorded.hypothesis})
                attempts = recorded.proposal_attempts
                if recorded.proposed_by.startswith("llm"):
                    llm.script = [INVALID] * max(0, attempts - 1) + [answer]
                else:
                    llm.script = []  # every LLM answer invalid: the optimiser or a mechanism was chosen

                def train(config, purpose, seed, recorded=recorded):
                    if purpose == "confirm" and recorded.confirm is not None:
                        return recorded.confirm
                    return recorded.outcome

                before = len(llm.calls)
                experiment = run_iteration(local=local, state=state, space=space, point=point, hooks=hooks,
                                           proposer=proposer, train=train, seq=g * spec.iterations + iteration,
                                           screen_rounds=spec.screen_rounds, near=start.config.near_repeat)
                for call in llm.calls[before:]:
                    lines.append({**call, "index": recorded.index})
                lines.append({"kind": "decision", "index": recorded.index, "generation": g, "iteration": iteration,
                              "changes": experiment.changes, "config": experiment.config,
                              "proposed_by": experiment.proposed_by, "kept": experiment.kept,
                              "default_kept": experiment.default_kept, "decided_by": experiment.decided_by,
                              "confirmed": experiment.confirm is not None,
                              "mechanisms": [m.model_dump() for m in experiment.mechanisms],
                              "attempts": experiment.proposal_attempts, "errors": experiment.proposal_errors,
                              "recorded": {"changes": recorded.changes, "config": recorded.config,
                                           "proposed_by": recorded.proposed_by, "kept": recorded.kept,
                                           "default_kept": recorded.default_kept, "decided_by": recorded.decided_by,
                                           "confirmed": recorded.confirm is not None,
                                           "mechanisms": [m.model_dump() for m in recorded.mechanisms],
                                           "attempts": recorded.proposal_attempts, "llm_calls": recorded.llm.calls},
                              "llm_calls": len(llm.calls) - before})
                local, state = local.appended(recorded), state.after(recorded)
        finally:
            if runtime is not None:
                runtime.close()
    path = out / f"{spec.meta_run_id}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")
    decisions = [x for x in lines if x["kind"] == "decision"]
    same = sum(d["changes"] == d["recorded"]["changes"] and d["kept"] == d["recorded"]["kept"] for d in decisions)
    print(f"{spec.meta_run_id}: {len(decisions)} decisions, {same} equal to the recorded ones (changes, kept); "
          f"{sum(x['kind'] == 'call' for x in lines)} LLM calls -> {path}", flush=True)


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for arg in sys.argv[2:]:
        replay(Path(arg), out_dir)
