"""Level 2 in pure Python: trace statistics that expose failure modes, the three research prompts
(explore, specify, generate), the mutate and repair prompts, and decoding of their answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from search.answers import extract_json
from search.hooks import HOOKS
from search.pyast import parse_python
from search.run_spec import PLAN_ADVICE_FOLLOWERS
from search.space import SearchSpace
from search.trace import Trace, same_config

MAX_CODE_CHARS = 8_000
MAX_STATE_NAMES = 4
MAX_BEHAVIOUR_CHARS = 400
REPEATS_THAT_LOOP = 10  # a 40-line class has no line 10 times; a looping answer has dozens
# A code answer ends at its closing fence: prose after it costs generated tokens and is never read (in the Level-2
# speed records, benchmarks/results/level2-speed/after, one of 18 answers spent 450 tokens after its class).
HOLE_MARK = "# your new body"  # the comment on a hole (HOLE below)
# A code answer ends at its closing fence, or where it copies a hole back: the answer that gives the skeleton back
# (4 of 6 fresh first-round samples in level2-yield-6's first three sessions) is stopped there instead of being
# generated whole (about 450 tokens) to be refused; decode_code_answer puts the mark back, and the methods not yet
# written stay holes when the answer is spliced in.
CODE_STOP = ["\n```\n", HOLE_MARK]
_FENCED = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
HOOK_NAMES = HOOKS
# Where the inner loop calls the hooks, as Level 2 reads it. A maintained text (not the live source), so a
# refactor of the loop does not silently change this prompt and invalidate cached answers.
LOOP_TEXT = """\
for each iteration of a generation (the trace and best config persist across generations):
    ctx = context(trace, state)                  # read-only JSON, see the API
    advice = plan(ctx)                           # every mechanism; advice is merged into the LLM prompt
    offered = propose(ctx)                       # every mechanism; candidates validated like LLM proposals
    llm_candidates = LLM(prompt + advice)        # skipped when a mechanism said skip_llm and offered some
    choice = screen(ctx, offered + llm_candidates)   # first mechanism with a verdict decides; reject = ask again
    result = train(choice)                       # the script trains for the fixed budget; its value is measured
    keep = accept(ctx, result, default_rule(result))  # default: keep if better than the current point
    observe(ctx, result)                         # every mechanism updates its own state
A mechanism that changes no decision in a generation is reverted; one that raises, hangs or answers outside
the API is quarantined and the loop carries on."""
# What the specification of makerun-1's trace asked for twice ("increase the budget by adding more training
# steps") and the code could not do, so every sample was inert.
OUT_OF_REACH = (
    "A mechanism cannot change the training budget (steps, time, FLOPs), the data, the script, the objective or the "
    "fixed parameters: the system sets them. It can only choose which values of the editable parameters are tried "
    "(propose, plan), which candidate trains (screen) and what is kept (accept)."
)
OPTIMISERS = {"tpe": "TPE (Optuna)", "cmaes": "CMA-ES (Optuna)", "random": "random search"}


def proposer_note(proposer: str) -> str:
    """Which hooks can change this run's decisions, by who proposes: an optimiser ignores a plan's advice
    (search/run_spec.PLAN_ADVICE_FOLLOWERS), so a mechanism that only plans is inert there."""
    if proposer not in PLAN_ADVICE_FOLLOWERS:
        return (f"In this run the candidates come from {OPTIMISERS.get(proposer, proposer)}, an optimiser that ignores "
                "a plan's advice (guidance, focus, avoid, n_candidates, temperature): plan has no effect here. A mechanism "
                "changes this run's decisions through propose (its candidates go on the table beside the "
                "optimiser's one), screen (which of them trains) and accept.")
    extra = " plus the optimiser's suggestion the LLM did not take" if proposer == "hybrid" else ""
    return (f"In this run the candidates come from the LLM{extra}; the LLM follows a plan's advice (guidance, focus, "
            "avoid, n_candidates, temperature), so every hook can change its decisions.")


# A repair of an inert sample gets the shape of a live hook, not only the advice to have one.
LIVE_PROPOSE = """    def propose(self, ctx):
        names = h.untried(ctx) or h.editable(ctx)          # or the parameters your idea is about
        rng = random.Random(ctx["seed"])
        name = names[rng.randrange(len(names))]
        return [h.candidate(name, h.neighbour(ctx, name, rng), "why, from your idea")]"""
SYSTEM = (
    "You are a research engineer improving an automated hyperparameter search loop. You design small search "
    "mechanisms (ideas from combinatorial optimisation, bandits, design of experiments) that plug into the loop "
    "through four hooks. You answer exactly in the format asked."
)


# -- trace statistics ------------------------------------------------------------------------------
def failure_modes(trace: Trace, space: SearchSpace) -> dict[str, Any]:
    """Numbers that show how the search is failing: repeats, untouched parameters, crashes, stagnation."""
    experiments = trace.decided
    # An invalid proposal changes nothing (its config is the incumbent's): invalid_rate counts those, not this.
    proposed = [e for e in trace.experiments if e.is_baseline or e.changes]
    repeated_configs = sum(any(same_config(e.config, earlier.config) for earlier in proposed[:i])
                           for i, e in enumerate(proposed))
    moves = Counter(f"{k}={json.dumps(v)}" for e in experiments for k, v in e.changes.items())
    stats = trace.param_stats(space.names)
    last_improvement = trace.last_improvement()
    counts = trace.counts()
    count = max(1, counts.experiments)
    return {
        "objective": trace.objective.describe(),
        "experiments": counts.experiments,
        "keep_rate": round(counts.kept / count, 3),
        "crash_rate": round(counts.crashes / count, 3),
        "invalid_rate": round(counts.invalid / count, 3),
        "repeated_configs": repeated_configs,
        "repeated_moves": {move: n for move, n in moves.most_common(5) if n > 1},
        "untouched_params": [name for name, s in stats.items() if s.tries == 0],
        "most_tried_params": [name for name, s in sorted(stats.items(), key=lambda kv: -kv[1].tries)[:4] if s.tries],
        "experiments_since_improvement": len(trace.experiments) - 1 - last_improvement,
        "best_value": trace.experiments[last_improvement].measured,
    }


# -- answers of the rounds -----------------------------------------------------------------------
# What explore may write per field: the JSON schema caps it (a grammar-constrained model stops there) and a longer
# answer from a model without a grammar is cut, not refused. Asked for one idea under caps of 400-500 characters and
# 4 ideas, the local model wrote 617 tokens on average, several ideas whose fields repeat one another up to the cap:
# 86 s of a 291 s session (benchmarks/results/level2-speed/quiet-92a76f7).
IDEA_CHARS = {"problem": 200, "evidence": 200, "idea": 300}


class Idea(BaseModel):
    problem: str = Field(json_schema_extra={"maxLength": IDEA_CHARS["problem"]})
    evidence: str = Field("", json_schema_extra={"maxLength": IDEA_CHARS["evidence"]})
    idea: str = Field(json_schema_extra={"maxLength": IDEA_CHARS["idea"]})

    @field_validator("problem", "evidence", "idea", mode="before")
    @classmethod
    def _capped(cls, value: Any, info: ValidationInfo) -> Any:
        return value[: IDEA_CHARS[info.field_name or ""]] if isinstance(value, str) else value


class ExploreAnswer(BaseModel):
    ideas: list[Idea] = Field(min_length=1, json_schema_extra={"maxItems": 1})

    @field_validator("ideas", mode="before")
    @classmethod
    def _first(cls, value: Any) -> Any:
        return value[:1] if isinstance(value, list) else value  # one is asked for; the first is the one used


class SpecifyAnswer(BaseModel):
    name: str = Field(description="snake_case mechanism name")
    hooks: list[str] = Field(min_length=1, max_length=4)
    state: str = Field("", max_length=500)
    behaviour: str = Field(max_length=900)

    @field_validator("state", mode="before")
    @classmethod
    def _state_names(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        # A small model's state list can loop ("x, y, y, y, ..."); the skeleton shows at most a few distinct names,
        # because a long list there turns into a long, looping __init__.
        names = list(dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", value)))
        return ", ".join(names[:MAX_STATE_NAMES])

    @field_validator("behaviour", mode="before")
    @classmethod
    def _distinct_sentences(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        sentences = list(dict.fromkeys(s.strip() for s in re.split(r"(?<=[.!?])\s+", value) if s.strip()))
        return " ".join(sentences)[:MAX_BEHAVIOUR_CHARS]

    @field_validator("name")
    @classmethod
    def _snake(cls, value: str) -> str:
        cleaned = re.sub(r"[^a-z0-9_]+", "_", value.strip().lower()).strip("_")[:40]
        if not cleaned or not cleaned[0].isalpha():
            raise ValueError("name must be snake_case and start with a letter")
        return cleaned

    @field_validator("hooks")
    @classmethod
    def _hooks(cls, value: list[str]) -> list[str]:
        unknown = [h for h in value if h not in HOOK_NAMES]
        if unknown:
            raise ValueError(f"unknown hooks {unknown}; use {list(HOOK_NAMES)}")
        return value


ROUND_MODELS: dict[str, type[BaseModel]] = {"explore": ExploreAnswer, "specify": SpecifyAnswer}


def round_schema(round_name: str) -> dict[str, Any]:
    return ROUND_MODELS[round_name].model_json_schema()


def parse_round(round_name: str, text: str) -> BaseModel:
    """Decode a JSON round answer; ValueError with a short reason the LLM can act on."""
    data = extract_json(text)
    try:
        return ROUND_MODELS[round_name].model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from error


def extract_code(text: str, require_class: bool = True) -> str:
    """The Python class in an answer (with `require_class=False`, any code: a mutant's changed methods): the first
    ```python fence (closed, or ended by CODE_STOP), else the whole text. Bounded; an answer that loops on one line
    says so (it was cut off, not merely wrong)."""
    match = _FENCED.search(text)
    code = (match.group(1) if match else text).strip()
    looping = repeated_line(code)
    if looping is not None and not _parses(code):
        raise ValueError(f"the answer repeats `{looping[0][:80]}` {looping[1]} times and was cut off; write each "
                         "line once and keep the class short")
    if len(code) > MAX_CODE_CHARS:
        raise ValueError(f"the code is {len(code)} characters; write a class under {MAX_CODE_CHARS} characters")
    if require_class and "class " not in code:
        raise ValueError("the answer contains no Python class")
    return code + "\n"


def decode_code_answer(text: str, finish_reason: str, max_tokens: int,
                       require_class: bool = True) -> tuple[str | None, str | None]:
    """(code, None) from a code answer, or (None, why it is refused). An answer cut at the token cap is refused even
    when its class parses: it may lack the methods it was about to write, and would be judged as something the
    model did not mean. A looping answer is also cut off; extract_code's message says more, so it goes first."""
    if finish_reason == "stop" and re.search(r"\.\.\.[ \t]*\Z", text):
        text = text.rstrip() + "  " + HOLE_MARK  # stopped at a hole it copied back: the hole as it was
    try:
        code = extract_code(text, require_class)
    except ValueError as problem:
        return None, str(problem)
    if finish_reason == "length" and not re.search(r"```(?:python|py)?[ \t]*\n.*?```", text, re.DOTALL):
        return None, (f"the answer was cut off at {max_tokens} tokens before its class ended; write a shorter class "
                      "(fewer methods, no comments that repeat the code)")
    return code, None


def _parses(code: str) -> bool:
    try:
        parse_python(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def repeated_line(text: str, times: int = REPEATS_THAT_LOOP) -> tuple[str, int] | None:
    """(line, count) when one non-trivial line occurs at least `times` times: a model stuck in a loop."""
    counts = Counter(line.strip() for line in text.splitlines() if len(line.strip()) > 8)
    line, count = counts.most_common(1)[0] if counts else ("", 0)
    return (line, count) if count >= times else None


# -- prompts ------------------------------------------------------------------------------------
def _system() -> dict[str, str]:
    return {"role": "system", "content": SYSTEM}


def shared_prefix(api_text: str, loop_source: str = LOOP_TEXT) -> str:
    """The text every Level-2 conversation's first user message starts with (explore, generate, mutate, hence repair):
    the same tokens, so the local model evaluates them once per session (and restores them from its disk cache across
    sessions) instead of once per prompt. Ends with a blank line; what follows differs."""
    return "\n".join([
        "The mechanism API (a mechanism is one Python class with any of these hooks):",
        api_text.strip(),
        "",
        "Where the inner loop calls the hooks:",
        "```python", loop_source.strip(), "```",
        "", "",
    ])


def explore_messages(*, api_text: str, loop_source: str, active: list[tuple[str, str]], stats: dict[str, Any],
                     workload_text: str, program: str = "", objective_text: str = "",
                     proposer: str = "") -> list[dict[str, str]]:
    active_text = "\n\n".join(f"# active mechanism {name}\n{source}" for name, source in active) or "(none active)"
    direction = program.strip()[:1500]
    content = shared_prefix(api_text, loop_source) + "\n".join([
        *([f"Research direction from the user: {direction}", ""] if direction else []),
        f"The loop optimises: {workload_text}",
        *([proposer_note(proposer)] if proposer else []),
        "",
        "Mechanisms active now:",
        active_text,
        "",
        "Statistics of the search so far:",
        json.dumps(stats, indent=1),
        "",
        OUT_OF_REACH,
        # One idea, chosen here: a separate critique round picked among several at the cost of a call, but its
        # answer put the choice before the reason, so nothing was weighed (benchmarks/results/level2-speed).
        "Name the one weakness of the current search that these statistics reveal whose fix is most likely to "
        f"{objective_text or 'improve the objective'} within a few dozen experiments, with the evidence and an idea "
        "for a mechanism simple enough to write as one small class that fixes it through the hooks.",
        'Answer with JSON: {"ideas": [{"problem": "...", "evidence": "...", "idea": "..."}]}',
    ])
    return [_system(), {"role": "user", "content": content}]


def specify_messages(history: list[dict[str, str]], idea: Idea) -> list[dict[str, str]]:
    content = (f"Specify the mechanism for: {idea.idea}\nGive it a snake_case name, list the hooks it implements "
               f"({', '.join(HOOK_NAMES)}: propose puts concrete candidates on the table, screen picks among "
               "candidates, plan advises the LLM, accept overrides keep/discard, observe updates state), the state "
               "it keeps, and exactly what each hook returns.\n"
               'Answer with JSON: {"name": "...", "hooks": ["propose", "observe"], "state": "...", "behaviour": "..."}')
    return [*history, {"role": "user", "content": content}]


HOOK_ORDER = ("plan", "propose", "screen", "accept", "observe")
# Where the model writes a body: in the skeleton of a fresh sample, and where a mutant's rewritten methods were. A
# skeleton whose bodies read `return None` came back unchanged in 7 of 20 fresh first-round samples
# (benchmarks/results/skeleton-echo), as a parent shown whole did for mutants (benchmarks/results/mutant-probe).
HOLE = f"...  {HOLE_MARK}"
SAMPLE_TEMPERATURES = (0.2, 0.5, 0.8, 1.0)


def class_name(name: str) -> str:
    """`one_factor` -> `OneFactor`."""
    return "".join(part.capitalize() for part in name.split("_") if part) or "Mechanism"


def skeleton_hooks(spec: SpecifyAnswer) -> list[str]:
    """The hooks the skeleton holds: the specified ones in the loop's order, and observe when there is state."""
    hooks = [hook for hook in HOOK_ORDER if hook in spec.hooks]
    if "observe" not in hooks and spec.state.strip():
        hooks.append("observe")  # state is kept up to date in observe
    return hooks


def skeleton(spec: SpecifyAnswer, hook_docs: dict[str, tuple[str, str]]) -> str:
    """The class to complete: imports, name, __init__ and the chosen hooks, each documented, with a hole (HOLE) for
    its body."""
    hooks = skeleton_hooks(spec)
    lines = ["import random", "", "import helpers as h", "", "", f"class {class_name(spec.name)}:",
             f'    """{spec.behaviour.strip()[:200].replace(chr(34) * 3, "")}"""', "", f'    name = "{spec.name}"', "",
             "    def __init__(self):",
             f"        # Keep the state ({spec.state.strip()[:160] or 'if any'}) in the dict self.state.",
             "        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).",
             "        self.state = {}"]
    for hook in hooks:
        signature, doc = hook_docs[hook]
        lines += ["", f"    {signature}", f'        """{short_doc(hook, doc)}"""', f"        {HOLE}"]
    return "\n".join(lines) + "\n"


def short_doc(hook: str, doc: str) -> str:
    """A hook's docstring in the skeleton: its first sentence and a pointer to its contract in the API text. The model
    copies the skeleton's docstrings into its answer; the whole contracts made ~40% of a sample's tokens
    (benchmarks/results/level2-speed), and the API text above the skeleton already holds them."""
    first = re.split(r"(?<=\.)\s", doc.strip(), maxsplit=1)[0].rstrip(".")
    return f"{first}. Return what the API says for {hook}, or None."


def generate_messages(*, api_text: str, example_source: str, spec: SpecifyAnswer,
                      hook_docs: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    """A fresh, short conversation for the code: fill in the bodies of a skeleton that is already written."""
    content = shared_prefix(api_text) + "\n".join([
        "Fill in the method bodies of the Python class below so that it does what the specification says.",
        "Rules: keep the class name, `name`, `__init__` and every method signature; imports only random, math, collections and "
        "helpers; no files, no os, no eval; bound every loop (iterate over a list or a range, never `while True`); "
        "each hook returns exactly what the API above says for it, or None; keep it under 40 lines. ctx exists only inside "
        "the hooks (not in __init__). ctx[\"params\"] is a list of dicts: use h.editable(ctx) for the names.",
        "",
        f"Specification of `{spec.name}`:",
        f"Behaviour: {spec.behaviour}",
        f"State: {spec.state or 'none'}",
        "It must change at least one decision of the loop when the trace gives it a reason to.",
        "",
        "A worked example of a DIFFERENT complete mechanism (learn the style, do not copy it):",
        "```python", example_source.strip(), "```",
        "",
        "The class to complete:",
        "```python", skeleton(spec, hook_docs).strip(), "```",
        fill_answer(skeleton_hooks(spec)),
    ])
    return [_system(), {"role": "user", "content": content}]


def mutate_messages(*, api_text: str, parent_label: str, parent_source: str, change: str,
                    spec: SpecifyAnswer, methods: list[str] | None = None) -> list[dict[str, str]]:
    """A fresh, short conversation for a mutant: the parent's source, exactly one stated change to make to it and the
    methods to rewrite for it, answered as a patch (those methods only)."""
    names = " and ".join(f"`{m}`" for m in methods or [])
    hidden = " and ".join(f"`{m}`" for m in methods or [] if m != "__init__" and f"def {m}(" in parent_source)
    content = shared_prefix(api_text) + "\n".join([
        f"Change the search mechanism `{parent_label}` below in exactly one way: {change}."
        + (f" Rewrite {names} to make that change" if names else "")
        + (f"; the body of {hidden} is left out below (`...`): write it new." if hidden else "." if names else ""),
        f"The change should serve this goal: {spec.behaviour}",
        "Rules: imports only random, math, collections and helpers; no files, no os, no eval; bound every loop "
        "(iterate over a list or a range, never `while True`); each hook returns exactly what the API says, or None. "
        "ctx exists only inside the hooks (not in __init__).",
        "",
        f"The mechanism to change (`{parent_label}`):",
        "```python", parent_source.strip()[:MAX_CODE_CHARS], "```",
        patch_answer(names),
    ])
    return [_system(), {"role": "user", "content": content}]


# A mutant is answered as a patch (mechanisms/splice.py puts it into the parent): fewer tokens to generate, and what
# is not repeated cannot be dropped.
PATCH_ANSWER = ("Answer in one ```python block with only the methods you change or add, each complete with its `def` "
                "line (and any new module-level constant); the methods you leave out stay as they are.")


# A fresh sample is answered as a patch of the skeleton too: written whole, the class repeated the skeleton's imports,
# docstrings and __init__, 640-720 generated tokens per fresh sample against 250-340 per mutant patch (session 8's
# development check, benchmarks/results/level2-speed/check-090ddc6), at about 7-9 tokens/s on 2 cores.
def fill_answer(hooks: list[str]) -> str:
    """How a fresh sample answers: the skeleton's hooks it fills in, by name (asked only for "the methods you fill
    in", the local model wrote the whole class again: session 8's check, benchmarks/results/level2-speed)."""
    names = " and ".join(f"`{hook}`" for hook in hooks)
    return (f"Answer in one ```python block with only the methods {names}, each complete with its `def` line and its "
            "body written (and any module-level constant or helper function they need); do not repeat the imports, "
            "the class line, `name` or `__init__`: they stay as they are.")


def patch_answer(names: str) -> str:
    """How a mutant answers: the named methods, rewritten (PATCH_ANSWER when none are named)."""
    if not names:
        return PATCH_ANSWER
    return (f"Answer in one ```python block with only the rewritten {names}, each complete with its `def` line and "
            "changed (and any new module-level constant above them); do not repeat the class line or the other "
            "methods: they stay as they are.")


def failing_line(code: str, error: str) -> str:
    """`line N: <code of line N>` for the last line number an error names, or '' when it names none."""
    numbers = [int(n) for n in re.findall(r"line (\d+)", error)]
    lines = code.splitlines()
    if numbers and 0 < numbers[-1] <= len(lines):
        return f"line {numbers[-1]}: `{lines[numbers[-1] - 1].strip()[:160]}`"
    return ""


def repair_messages(messages: list[dict[str, str]], code: str, stage: str, error: str,
                    patch: bool = False) -> list[dict[str, str]]:
    """The generation prompt, the candidate that got furthest, and exactly why it failed (with the failing line);
    `patch`: a mutant's repair, answered with the fixed methods only."""
    where = failing_line(code, error)
    return [
        *messages,
        {"role": "assistant", "content": f"```python\n{code[:MAX_CODE_CHARS]}```"},
        {"role": "user", "content": f"Validation failed at stage '{stage}': {error[:800]}\n"
                                    + (f"The failing {where}\n" if where else "")
                                    + (f"A live propose hook looks like this:\n```python\n{LIVE_PROPOSE}\n```\n"
                                       if stage == "liveness" else "")
                                    + ("Fix exactly that. " + PATCH_ANSWER.replace("change or add", "fix") if patch
                                       else "Fix exactly that. Answer with the complete corrected class in one "
                                            "```python block.")},
    ]
