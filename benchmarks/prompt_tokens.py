"""How long the hybrid's proposal prompts of recorded runs are, estimated (search/prompt_budget.py) and counted by the
local model's tokenizer, and whether the context budget would shorten them.

For each run folder (spec.json, trace.json) and each decision point, the prompt is rebuilt as the run built it (the
optimiser's suggestions from the run's seed) and counted with Qwen's tokenizer (llama.cpp, vocabulary only: the model
is not run) in its chat template. Prints one JSON object per prompt, then one summary per run; asserts nothing.

    python benchmarks/prompt_tokens.py [--context 4096] RUN_FOLDER ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def qwen_counter() -> Any:
    """Tokens of chat messages as the local model counts them (Qwen2.5's ChatML template)."""
    import llama_cpp

    from infra.local_model import configured_model_path
    from infra.settings import load_settings

    llama = llama_cpp.Llama(str(configured_model_path(load_settings())), vocab_only=True, verbose=False)

    def count(messages: list[dict[str, str]]) -> int:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"
        return len(llama.tokenize(text.encode(), add_bos=False, special=True))

    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    from infra.settings import apply_telemetry_opt_outs, load_settings

    apply_telemetry_opt_outs()
    from infra.resources import build_workload
    from search.context import DecisionPoint
    from search.iteration import ProposalRequest
    from search.prompt_budget import estimate_tokens, prompt_budget
    from search.prompts import proposal_messages
    from search.run_spec import MetaRunSpec
    from search.tpe_proposal import optimiser_note, optimiser_suggestions
    from search.trace import Trace
    from tasks.propose import PROPOSAL_MAX_TOKENS

    count = qwen_counter()
    budget = prompt_budget(args.context, PROPOSAL_MAX_TOKENS)
    for folder in args.runs:
        spec = MetaRunSpec.model_validate_json((folder / "spec.json").read_text())
        trace = Trace.model_validate_json((folder / "trace.json").read_text())
        workload = build_workload(load_settings(), spec.workload)
        text = workload.describe(spec.budget.mode)
        rows = []
        for cut in range(1, len(trace.experiments) + 1):
            generation = [g for g in trace.generations if g.start <= cut][-1]
            local = trace.with_experiments(trace.experiments[:cut])
            point = DecisionPoint(meta_run_id=spec.meta_run_id, run_seed=spec.seed, generation=generation.generation,
                                  track=0, iteration=cut - generation.start, start=generation.start,
                                  visible_from=generation.visible_from, config=generation.config)
            request = ProposalRequest(point=point, local=local, state=local.state(), space=workload.space,
                                      near=generation.config.near_repeat)
            if spec.proposer in ("hybrid", "hybrid-cmaes"):
                kind = "cmaes" if spec.proposer == "hybrid-cmaes" else "tpe"
                suggested = optimiser_suggestions(request, kind, point.hook_seed, count=2)  # type: ignore[arg-type]
                request = request.model_copy(update={"suggested": suggested.candidates,
                                                     "optimiser_note": optimiser_note(request, kind)})  # type: ignore[arg-type]
            full = proposal_messages(request, workload_text=text, program=spec.program)
            fitted = proposal_messages(request, workload_text=text, program=spec.program, token_budget=budget)
            row = {"run": spec.meta_run_id, "cut": cut, "estimated": estimate_tokens(full), "counted": count(full),
                   "shortened": fitted != full, "fitted_estimated": estimate_tokens(fitted),
                   "fitted_counted": count(fitted)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(json.dumps({"run": spec.meta_run_id, "edits": spec.workload.edits, "context": args.context,
                          "budget": budget, "prompts": len(rows), "shortened": sum(r["shortened"] for r in rows),
                          "max_counted": max(r["counted"] for r in rows),
                          "max_estimated": max(r["estimated"] for r in rows),
                          "estimate_over_count": [round(min(r["estimated"] / r["counted"] for r in rows), 3),
                                                  round(max(r["estimated"] / r["counted"] for r in rows), 3)]}),
              flush=True)


if __name__ == "__main__":
    main()
