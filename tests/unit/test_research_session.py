"""The research session's selection and repair logic (mechanisms/research_session.py) with fake injected effects:
no Prefect, MLflow, S3, sandbox or model."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mechanisms.population import (
    CHANGES,
    HOLE,
    Mutation,
    Parent,
    build_population,
    lineage_parents,
    mutant_count,
    plan_mutations,
    unchanged,
    with_holes,
)
from mechanisms.research_session import (
    AUTOFIX_SAMPLE,
    BENEFIT,
    Attempt,
    CodeResult,
    Published,
    RoundResult,
    SessionInputs,
    SessionPorts,
    furthest,
    run_session,
    select,
)
from search.active_set import LandscapeGain
from search.simulate import SimulatedGain
from search.surrogate import SurrogateError

SPECIFY = {"name": "probe", "hooks": ["propose"], "state": "none", "behaviour": "propose something"}
ROUNDS = {"explore": {"ideas": [{"problem": "p", "evidence": "e", "idea": "i"}, {"problem": "q", "idea": "j"}]},
          "specify": SPECIFY}


def gain(delta: float, high: float | None = None) -> SimulatedGain:
    high = delta + 0.01 if high is None else high
    return SimulatedGain(delta=delta, ci_low=delta - 0.01, ci_high=high, seeds=4, iterations=2,
                         per_seed=[delta] * 4)


def code(tag: str) -> str:
    # a body that does something (an empty body is refused unchecked: mechanisms/splice.only_holes)
    return f"class Probe:\n    name = 'probe'\n\n    def propose(self, ctx):\n        return {{}}  # {tag}\n"


def valid(report_hooks: tuple[str, ...] = ("propose",)) -> dict[str, Any]:
    return {"ok": True, "stage_failed": None, "error": None, "liveness": {"decisions_changed": 3, "hooks": list(report_hooks)}}


def failed(stage: str, error: str = "boom") -> dict[str, Any]:
    return {"ok": False, "stage_failed": stage, "error": f"{stage} stage failed: {error}", "liveness": {}}


class Fakes:
    """Scripted effects: per round the generated codes; per code tag its validation and simulated gain."""

    def __init__(self, rounds: list[list[str | None]], reports: dict[str, dict], gains: dict[str, Any]) -> None:
        self.rounds, self.reports, self.gains = rounds, reports, gains
        self.generated: list[tuple[int, list[dict[str, str]], int]] = []
        self.published: list[tuple[int, str]] = []
        self.simulated: list[int] = []
        self.asked: list[tuple[str, list[dict[str, str]]]] = []

    def tag(self, source: str) -> str:
        # the comment on the scripted body's line (a fresh answer is spliced into a skeleton with more comments)
        return re.findall(r"return (?:\{\}|\[\]|None)  # (.+)$", source, re.M)[0].strip()

    def ask_round(self, name: str, messages: list[dict[str, str]]) -> RoundResult:
        self.asked.append((name, messages))
        return RoundResult(answer=ROUNDS[name], messages=[*messages, {"role": "assistant", "content": name}])

    def generate(self, round_index: int, messages: list[dict[str, str]], samples: int) -> list[CodeResult]:
        self.generated.append((round_index, messages, samples))
        tags = self.rounds[round_index] if round_index < len(self.rounds) else []
        return [CodeResult(sample=i, temperature=0.5, code=code(t) if t else None, error=None if t else "no code")
                for i, t in enumerate(tags[:samples])]

    def validate(self, name: str, attempt: int, source: str) -> dict:
        if name != "probe":  # a parent as it is, checked under its own name: inert unless scripted
            return self.reports.get(f"{name} as it is", failed("liveness", "it changed no decision"))
        return self.reports[self.tag(source)]

    def simulate(self, name: str, attempt: int, source: str) -> SimulatedGain:
        self.simulated.append(attempt)
        value = self.gains[self.tag(source) if name == "probe" else f"{name} as it is"]
        if isinstance(value, Exception):
            raise value
        return value

    def publish(self, name: str, attempt: Attempt, status: str) -> Published:
        self.published.append((attempt.attempt_id, status))
        return Published(version_id=f"v{attempt.attempt_id}", sha256="0" * 64)

    def ports(self, **extra: Any) -> SessionPorts:
        return SessionPorts(ask_round=self.ask_round, generate=self.generate, validate=self.validate,
                            simulate=self.simulate, publish=self.publish, **extra)


INPUTS = SessionInputs(stats={}, workload_text="w", objective_text="minimise loss", metric_name="loss", active=[],
                       samples=3, repairs=2)


def attempt(sample: int, report: dict, simulated: SimulatedGain | None = None, round_index: int = 0) -> Attempt:
    return Attempt(round_index=round_index, sample=sample, code=code(str(sample)), report=report, simulated=simulated)


def test_select_takes_the_best_simulated_gain_whose_ci_lies_below_zero() -> None:
    small, large, unsure = attempt(0, valid(), gain(-0.01)), attempt(1, valid(), gain(-0.05)), attempt(2, valid(), gain(-0.2, high=0.01))
    assert select([small, large, unsure]) is large  # `unsure` has the best mean, but its CI reaches above 0


def test_select_breaks_ties_by_the_earliest_sample() -> None:
    later, earlier = attempt(2, valid(), gain(-0.03)), attempt(1, valid(), gain(-0.03))
    assert select([later, earlier]) is earlier
    assert select([attempt(0, valid(), gain(-0.03), round_index=1), attempt(5, valid(), gain(-0.03))]).sample == 5


def test_select_refuses_inert_harmful_and_invalid_samples() -> None:
    inert = attempt(0, valid(), gain(0.0, high=0.0))  # never changed a decision: every paired Δ is exactly 0
    harmful = attempt(1, valid(), gain(0.02))
    invalid = attempt(2, failed("smoke"), gain(-0.5))  # a gain without validity counts for nothing
    assert select([inert, harmful, invalid]) is None
    assert inert.stage_failed == BENEFIT and "changed no simulated outcome" in inert.error and "+0" in inert.error
    assert "guidance text and state alone change nothing" in inert.error  # what the repair must change
    assert "no simulated gain" in harmful.error and "changed no simulated outcome" not in harmful.error
    assert invalid.stage_failed == "smoke"


def test_a_gain_under_a_tenth_of_the_noise_floor_is_refused_as_negligible() -> None:
    # a pattern move that rarely fired was "significant" at -0.00001 against a floor of 0.0023 (level2-shapes)
    tiny = attempt(0, valid(), gain(-0.00001, high=-0.000001).model_copy(update={"noise_sd": 0.0023}))
    real = attempt(1, valid(), gain(-0.0003, high=-0.0001).model_copy(update={"noise_sd": 0.0023}))
    unknown_floor = attempt(2, valid(), gain(-0.00001, high=-0.000001))  # noise_sd 0: nothing to compare with
    assert tiny.simulated.negligible and not tiny.simulated.beats_current  # type: ignore[union-attr]
    assert select([tiny]) is None and tiny.stage_failed == BENEFIT
    assert "negligible" in tiny.error and "0.0023" in tiny.error and "no simulated gain" not in tiny.error
    assert select([tiny, real]) is real and select([unknown_floor]) is unknown_floor


def on_landscapes(base: SimulatedGain, *entries: tuple[str, float, float]) -> SimulatedGain:
    return base.model_copy(update={"landscapes": [LandscapeGain(landscape=name, delta=(low + high) / 2, ci_low=low,
                                                                ci_high=high, seeds=4) for name, low, high in entries]})


def test_a_sample_that_helps_on_the_trace_but_harms_a_synthetic_landscape_is_refused_with_its_numbers() -> None:
    overfit = attempt(0, valid(), on_landscapes(gain(-0.2), ("synthetic", -0.1, 0.3), ("hartmann6", 0.02, 0.4)))
    modest = attempt(1, valid(), on_landscapes(gain(-0.03), ("synthetic", -0.2, 0.1), ("hartmann6", -0.3, 0.2)))
    assert select([overfit, modest]) is modest  # the larger gain on the trace's surrogate does not count
    assert overfit.stage_failed == BENEFIT and "harmful on the synthetic landscape(s) hartmann6" in overfit.error
    assert "hartmann6 Δ +0.21 (CI +0.02 to +0.4)" in overfit.error and "synthetic Δ +0.1" in overfit.error
    assert select([overfit]) is None


def test_repair_starts_from_the_sample_that_got_furthest() -> None:
    policy, smoke, live = attempt(0, failed("policy")), attempt(1, failed("smoke")), attempt(2, valid(), gain(0.01))
    assert furthest([policy, smoke, live]) is live  # live but no benefit passed every validation stage
    assert furthest([policy, smoke]) is smoke
    assert furthest([attempt(3, failed("smoke"), round_index=1), smoke]) is smoke  # earliest on a tie


def test_the_session_activates_the_beneficial_sample_and_publishes_every_checked_one() -> None:
    fakes = Fakes([["harmful", "helpful", None]], {"harmful": valid(), "helpful": valid()},
                  {"harmful": gain(0.02), "helpful": gain(-0.04)})
    report = run_session(INPUTS, fakes.ports())
    assert report.accepted is not None and report.accepted.sample == 1 and report.accepted.version_id == "v1"
    assert report.accepted.simulated.delta == -0.04 and "accepted probe (round 0, 2 of 2 samples valid" in report.verdict
    assert "simulated Δ -0.04" in report.verdict
    assert fakes.published == [(0, "rejected"), (1, "accepted")]
    assert [(s.sample, s.status, s.stage_failed) for s in report.samples] == [(0, "rejected", BENEFIT), (1, "accepted", None)]
    assert report.samples[0].simulated.delta == 0.02 and report.rounds == 1 and len(fakes.generated) == 1


def test_a_live_sample_without_gain_is_not_repaired_the_session_ends_with_its_numbers() -> None:
    fakes = Fakes([["inert", "broken"], ["inert2"]],
                  {"inert": valid(), "inert2": valid(), "broken": failed("smoke")},
                  {"inert": gain(0.0, high=0.0), "inert2": gain(0.0, high=0.0)})
    report = run_session(INPUTS.__class__(**{**INPUTS.__dict__, "samples": 2}), fakes.ports())
    # the furthest sample is live without gain: no repair round (benchmarks/results/level2-repairs)
    assert report.accepted is None and report.rounds == 1
    assert [round_index for round_index, _, _ in fakes.generated] == [0]
    assert report.verdict.startswith("rejected at benefit: benefit stage failed: live, but it changed no simulated")
    assert all(s.status == "rejected" for s in report.samples) and len(report.samples) == 2


def test_a_repair_that_gets_no_sample_further_ends_the_session() -> None:
    fakes = Fakes([["a"], ["b"], ["c"]], {"a": failed("smoke"), "b": failed("smoke"), "c": valid()},
                  {"c": gain(-0.02)})
    report = run_session(INPUTS.__class__(**{**INPUTS.__dict__, "samples": 1}), fakes.ports())
    # the repair failed at smoke again: the next round would ask the same question, so the session gives up
    assert report.accepted is None and report.rounds == 2 and len(fakes.generated) == 2
    assert report.verdict.startswith("rejected at smoke")


def test_all_invalid_samples_are_never_simulated_and_repair_starts_from_the_furthest() -> None:
    fakes = Fakes([["a", "b"], ["c"], ["d"]], {"a": failed("policy"), "b": failed("smoke", "propose refused"),
                                              "c": failed("policy"), "d": failed("import")}, {})
    report = run_session(INPUTS, fakes.ports())
    assert report.accepted is None and fakes.simulated == []
    assert "# b" in "\n".join(m["content"] for m in fakes.generated[1][1])  # smoke is further than policy
    assert report.verdict.startswith("rejected at smoke")


def test_a_repair_that_shows_benefit_is_activated_in_its_round() -> None:
    fakes = Fakes([["broken"], ["fixed"]], {"broken": failed("smoke"), "fixed": valid()}, {"fixed": gain(-0.02)})
    report = run_session(INPUTS, fakes.ports())
    assert report.accepted is not None and report.accepted.round == 1 and report.rounds == 2
    assert fakes.published == [(0, "rejected"), (100, "accepted")]


def test_no_class_at_all_asks_again_for_a_python_block() -> None:
    fakes = Fakes([[None, None], ["ok"]], {"ok": valid()}, {"ok": gain(-0.02)})
    report = run_session(INPUTS, fakes.ports())
    assert report.accepted is not None and "```python" in fakes.generated[1][1][-1]["content"]


def test_a_trace_too_short_to_simulate_stops_the_session_with_the_reason() -> None:
    fakes = Fakes([["live"], ["live2"]], {"live": valid(), "live2": valid()},
                  {"live": SurrogateError("the trace holds 1 measured and 0 crashed experiments")})
    report = run_session(INPUTS, fakes.ports())
    assert report.accepted is None and len(fakes.generated) == 1  # a repair cannot lengthen the trace
    assert report.verdict == ("rejected at benefit: no simulation possible on this trace (the trace holds 1 measured "
                              "and 0 crashed experiments)")
    assert report.samples[0].stage_failed == BENEFIT and "could not run" in report.samples[0].error


def test_a_verbatim_copy_of_the_example_is_refused_without_validation() -> None:
    from mechanisms.library import list_library

    example = list_library()[0].source
    fakes = Fakes([["x"]], {}, {})
    fakes.generate = lambda r, m, n: [CodeResult(sample=0, temperature=0.0, code=example)]  # type: ignore[method-assign]
    report = run_session(INPUTS.__class__(**{**INPUTS.__dict__, "repairs": 0}), fakes.ports())
    assert report.samples[0].stage_failed == "static" and "copied verbatim" in report.samples[0].error


def test_autofixed_variants_are_checked_as_their_own_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    import mechanisms.research_session as session

    monkeypatch.setattr(session, "autofix", lambda source, metric, **parent: (source.replace("# bad", "# good"), ["fixed"]))
    fakes = Fakes([["bad"]], {"bad": failed("static"), "good": valid()}, {"good": gain(-0.02)})
    report = run_session(INPUTS, fakes.ports())
    assert report.accepted is not None and report.accepted.sample == AUTOFIX_SAMPLE


def test_the_novelty_hook_is_recorded_per_sample() -> None:
    fakes = Fakes([["ok"]], {"ok": valid()}, {"ok": gain(-0.02)})
    report = run_session(INPUTS, fakes.ports(describe_novelty=lambda source, parent: "derived from library:x (similarity 0.9)"))
    assert report.samples[0].novelty == "derived from library:x (similarity 0.9)"
    # the verdict says it of the activated fresh sample: "fresh" is not "invented"
    assert "a fresh sample, derived from library:x (similarity 0.9)," in report.verdict


def test_no_specification_ends_the_session_before_generation() -> None:
    fakes = Fakes([["ok"]], {}, {})
    fakes.ask_round = lambda name, messages: RoundResult(answer=None, messages=messages)  # type: ignore[method-assign]
    report = run_session(INPUTS, fakes.ports())
    assert report.verdict == "research rounds gave no usable specification" and fakes.generated == []


# -- mutants of the population (mechanisms/population.py) -------------------------------------------------------------
def parent(label: str, credit: float | None = None, tag: str = "p") -> Parent:
    name = label.split("@")[0].removeprefix("library:")
    return Parent(label=label, name=name, source=code(f"parent {tag}").replace("return {}  #", "return []  #"),
                  version_id=label.split("@")[1] if "@" in label else None, credited_delta=credit)


class MutantFakes(Fakes):
    """Fakes whose mutate port answers, per mutant sample, the scripted code tag (None: the parent unchanged)."""

    def __init__(self, mutants: dict[int, str | None], *args: Any) -> None:
        super().__init__(*args)
        self.mutants = mutants
        self.mutate_prompts: dict[int, str] = {}
        self.repair_prompts: list[list[dict[str, str]]] = []

    def mutate(self, round_index: int, messages: list[dict[str, str]], sample: int) -> CodeResult:
        if round_index > 0:  # a mutant's repair: the round's scripted code, as a patch
            self.repair_prompts.append(messages)
            return self.generate(round_index, messages, 1)[0]
        self.mutate_prompts[sample] = messages[-1]["content"]
        tag = self.mutants[sample]
        # None: the parent unchanged (its body where the prompt shows a hole: the parents here are code("parent ..."))
        shown = messages[-1]["content"].split("```python\n")[-1].split("```")[0] + "\n"
        source = code(tag) if tag else shown.replace(HOLE, "return []  # parent " + shown.split("# parent ")[-1]
                                                     if "# parent " in shown else "return []  # parent p")
        return CodeResult(sample=sample, temperature=0.5, code=source)

    def ports(self, **extra: Any) -> SessionPorts:
        return super().ports(mutate=self.mutate, **extra)


def mutant_inputs(population: list[Parent], samples: int = 4, mutants: int = 2, repairs: int = 0) -> SessionInputs:
    return SessionInputs(stats={}, workload_text="w", objective_text="minimise loss", metric_name="loss", active=[],
                         samples=samples, repairs=repairs, population=tuple(population), mutants=mutants)


def test_the_population_is_earlier_credited_mechanisms_best_first_and_bounded_then_the_library() -> None:
    from mechanisms.library import ONE_SHOT, list_library

    library = [f"library:{entry.name}" for entry in list_library() if entry.name not in ONE_SHOT]
    assert [p.label for p in build_population([])] == library  # no earlier runs: the library
    assert "library:one_factor" not in library and "library:nearest_screen" in library  # one-shot designs are no parents
    credited = [parent("a@1", -0.01, "a"), parent("b@2", -0.05, "b"), parent("hurt@3", 0.02, "c"),
                parent("d@4", -0.03, "d"), parent("e@5", -0.02, "e"), parent("f@6", -0.04, "b")]  # f: b's source
    population = build_population(credited, limit=3)
    assert [p.label for p in population] == ["b@2", "d@4", "e@5", *library]  # a helped least; hurt never helped


def test_mutations_start_from_credited_parents_then_library_ones_with_the_wanted_hooks_one_change_each() -> None:
    population = build_population([parent("best@7", -0.1)])
    plan = plan_mutations(population, 4, ["screen"])
    assert [m.parent.label for m in plan[:2]] == ["best@7", "library:tabu"]  # tabu defines screen; credit first
    assert [m.kind for m in plan] == ["rule", "state", "threshold", "rule"]
    assert mutant_count(4, 2, population) == 2 and mutant_count(3, 2, population) == 1  # at most half
    assert mutant_count(1, 2, population) == 0 and mutant_count(4, 2, []) == 0  # a fresh sample always; no parents
    assert lineage_parents(["ctx1", "v7"], plan[0].parent) == ["7", "ctx1", "v7"]
    assert lineage_parents(["ctx1"], plan[1].parent) == ["ctx1"]  # a library parent has no VersionId


def test_the_mutate_prompt_shows_the_parent_source_and_one_stated_change() -> None:
    first, second = parent("kept@11", -0.2, "one"), parent("kept2@12", -0.1, "two")
    fakes = MutantFakes({10: "m0", 11: "m1"}, [["fresh", "fresh2"]], {"fresh": valid(), "fresh2": valid(),
                        "m0": valid(), "m1": valid()}, {t: gain(0.01) for t in ("fresh", "fresh2", "m0", "m1")})
    run_session(mutant_inputs([first, second]), fakes.ports())
    assert fakes.generated[0][2] == 2  # 4 samples: 2 fresh inventions and 2 mutants
    prompt = fakes.mutate_prompts[10]
    assert with_holes(first.source, ["propose"]).strip() in prompt and "parent two" not in prompt
    assert CHANGES[0][1] in prompt and all(text not in prompt for _, text in CHANGES[1:])  # exactly one change
    # answered as a patch of the named methods, spliced into the parent
    assert "kept@11" in prompt and "Rewrite `propose` to make that change; the body of `propose` is left out" in prompt
    assert "only the rewritten `propose`, each complete" in prompt
    assert "Rewrite `__init__` and `observe` and `propose`" in fakes.mutate_prompts[11]  # a new state variable
    assert "kept2@12" in fakes.mutate_prompts[11] and CHANGES[1][1] in fakes.mutate_prompts[11]


def test_a_mutant_is_selected_like_any_sample_and_its_report_carries_its_parent() -> None:
    kept = parent("kept@11", -0.2)
    fakes = MutantFakes({10: "mutant"}, [["fresh"]], {"fresh": valid(), "mutant": valid()},
                        {"fresh": gain(-0.01), "mutant": gain(-0.05)})
    seen: list[tuple[str, Parent | None]] = []

    def novelty(source: str, parent: Parent | None) -> str:
        seen.append((fakes.tag(source), parent))
        return "invented" if parent is None else f"derived from {parent.label}"

    report = run_session(mutant_inputs([kept], samples=2, mutants=1), fakes.ports(describe_novelty=novelty))
    assert fakes.simulated == [0, 10]  # simulated like the fresh sample
    assert report.accepted is not None and report.accepted.sample == 10 and report.accepted.parent == kept
    assert report.accepted.change == "rule" and report.accepted.novelty == "derived from kept@11"
    assert "a mutant of kept@11 (rule)" in report.verdict
    assert [(s.sample, s.parent, s.change, s.stage_failed) for s in report.samples] == [
        (0, None, None, "benefit"), (10, "kept@11", "rule", None), (30, "kept@11", "as is", "liveness")]
    assert seen == [("fresh", None), ("mutant", kept), ("parent p", kept)]


def test_an_unchanged_parent_is_refused_without_validation_and_a_repair_keeps_the_parent() -> None:
    kept = parent("kept@11", -0.2)
    fakes = MutantFakes({10: None}, [["broken"], ["fixed"]], {"broken": failed("policy"), "fixed": valid()},
                        {"fixed": gain(-0.02)})
    report = run_session(mutant_inputs([kept], samples=2, mutants=1, repairs=1), fakes.ports())
    unchanged_sample = next(s for s in report.samples if s.sample == 10)
    assert unchanged_sample.stage_failed == "static" and "parent `kept@11` unchanged" in unchanged_sample.error
    # the unchanged mutant got further (static) than the fresh one (policy): the repair continues the mutant, as a patch
    repair_prompt = "\n".join(m["content"] for m in fakes.repair_prompts[0])
    assert "return []  # parent p" in repair_prompt and "make the one change asked" in repair_prompt  # what it repairs
    assert "with only the methods you fix" in repair_prompt
    assert report.accepted is not None and report.accepted.round == 1 and report.accepted.parent == kept
    assert report.accepted.code.startswith("class Probe:") and "# fixed" in report.accepted.code


def test_a_parent_that_beats_its_mutants_is_activated_as_it_is_under_its_own_name() -> None:
    kept = parent("kept@11", -0.2)
    fakes = MutantFakes({10: "mutant"}, [["fresh"]], {"fresh": valid(), "mutant": valid(), "kept as it is": valid()},
                        {"fresh": gain(-0.01), "mutant": gain(-0.05), "kept as it is": gain(-0.08)})
    report = run_session(mutant_inputs([kept], samples=2, mutants=1), fakes.ports())
    assert list(fakes.mutate_prompts) == [10]  # the parent as it is costs no LLM call
    assert fakes.simulated == [0, 10, 30]
    assert report.accepted is not None and report.accepted.name == "kept" and report.accepted.sample == 30
    assert report.accepted.code == kept.source and report.accepted.parent == kept and report.accepted.change == "as is"
    assert report.verdict.startswith("accepted kept (round 0") and "kept@11 as it is (no LLM answer)" in report.verdict
    assert (30, "accepted") in fakes.published and (10, "rejected") in fakes.published


def test_a_mutant_no_better_than_its_parent_loses_the_tie_to_the_parent() -> None:
    kept = parent("kept@11", -0.2)
    fakes = MutantFakes({10: "mutant"}, [["fresh"]], {"fresh": valid(), "mutant": valid(), "kept as it is": valid()},
                        {"fresh": gain(0.01), "mutant": gain(-0.05), "kept as it is": gain(-0.05)})
    report = run_session(mutant_inputs([kept], samples=2, mutants=1), fakes.ports())
    assert report.accepted is not None and report.accepted.sample == 30 and report.accepted.name == "kept"


def test_an_active_parent_is_not_checked_again_and_a_parent_is_never_repaired_or_autofixed() -> None:
    kept, other = parent("kept@11", -0.2, "one"), parent("other@12", -0.1, "two")
    inputs = mutant_inputs([kept], samples=2, mutants=1)
    active = SessionInputs(**{**inputs.__dict__, "active": [("kept", kept.source)]})
    # the active parent would be live and beat its mutant if it were checked: it is not
    fakes = MutantFakes({10: "mutant"}, [["fresh"]], {"fresh": failed("policy"), "mutant": valid(),
                        "kept as it is": valid()}, {"mutant": gain(-0.05), "kept as it is": gain(-0.1)})
    report = run_session(active, fakes.ports())
    assert fakes.simulated == [10] and [attempt for attempt, _ in fakes.published] == [0, 10]
    assert report.accepted is not None and report.accepted.sample == 10
    # a parent that fails (here: inert) is reported, but the repair continues the furthest LLM answer (the mutant)
    fakes = MutantFakes({10: None}, [[None], [None]], {"other as it is": failed("smoke")}, {})
    report = run_session(mutant_inputs([other], samples=2, mutants=1, repairs=1), fakes.ports())
    assert [(s.sample, s.stage_failed) for s in report.samples if s.round == 0] == [(10, "static"), (30, "smoke")]
    assert len(fakes.repair_prompts) == 1 and "other@12" in "\n".join(m["content"] for m in fakes.repair_prompts[0])
    # when the parents as they are are all there is, the next round asks for a class again
    fakes = MutantFakes({}, [[None, None], [None, None]], {}, {})
    report = run_session(mutant_inputs([other], samples=2, mutants=0, repairs=1), fakes.ports())
    assert report.samples == []  # no mutants planned: no parent is checked either
    fakes = MutantFakes({10: "nothing"}, [[None], [None]], {"other as it is": failed("liveness")}, {})
    fakes.mutate = lambda r, m, sample: CodeResult(sample=sample, temperature=0.5, code=None,  # type: ignore[method-assign]
                                                    error="no class")
    report = run_session(mutant_inputs([other], samples=2, mutants=1, repairs=1), fakes.ports())
    assert report.verdict.startswith("no sample held a usable class; other@12 as it is: rejected at liveness")
    assert [g[0] for g in fakes.generated] == [0, 1]  # the repair round asked the model again


def test_a_mutant_whose_only_change_is_state_nothing_reads_is_its_parent_unchanged() -> None:
    from mechanisms.library import library_source
    from mechanisms.research_session import unchanged_report

    ucb = library_source("ucb_bandit")
    # the activated "state" mutant of level2-yield-5's session 0: an unused import and a state variable never read
    dead = ucb.replace("import math\n", "import math\nfrom typing import Dict, List\n").replace(
        "        self.total = 0\n", "        self.total = 0\n        self.last_state = None\n")
    assert dead != ucb and unchanged(dead, ucb)
    error = unchanged_report(Mutation(parent=Parent(label="library:ucb_bandit", name="ucb_bandit", source=ucb),
                                      kind="state", change="add one new state variable"), dead)["error"]
    assert "self.last_state is set but nothing reads it" in error and "make the one change asked" in error
    # read in a decision, the same variable is a change
    used = dead.replace("mean = self.wins.get(arm, 0) / pulls", "mean = self.wins.get(arm, 0) / pulls + "
                        "(1 if self.last_state else 0)").replace("reward = 1 if", "self.last_state = arm\n        "
                                                                 "reward = 1 if")
    assert used != dead and not unchanged(used, ucb)


def test_a_mutant_answered_as_a_patch_keeps_what_it_did_not_repeat() -> None:
    from mechanisms.library import library_source

    tabu = Parent(label="library:tabu", name="tabu", source=library_source("tabu"))
    patch = "```python\nTENURE = 6\n\ndef screen(self, ctx, candidates):\n    return 0  # patched\n```"
    fakes = MutantFakes({10: None}, [["fresh"]], {"fresh": failed("policy"), "patched": valid()},
                        {"patched": gain(-0.05)})
    fakes.mutate = lambda r, m, sample: CodeResult(  # type: ignore[method-assign]
        sample=sample, temperature=0.5, code=patch.split("```python\n")[1].split("```")[0])
    fakes.tag = lambda source: "patched" if "# patched" in source else "fresh"  # type: ignore[method-assign]
    report = run_session(mutant_inputs([tabu], samples=2, mutants=1), fakes.ports())
    assert report.accepted is not None and report.accepted.sample == 10
    source = report.accepted.code
    assert "TENURE = 6" in source and "TENURE = 12" not in source and "return 0  # patched" in source
    assert "def observe(self, ctx, result)" in source and "class Probe:" in source and 'name = "probe"' in source


def test_a_fresh_sample_that_gives_the_skeleton_back_is_refused_unchecked_and_a_partly_filled_one_is_checked() -> None:
    from mechanisms.api import HOOK_DOCS
    from search.research import SpecifyAnswer, skeleton

    spec = SpecifyAnswer(name="probe", hooks=["propose", "plan"], state="seen", behaviour="b")
    given_back = skeleton(spec, HOOK_DOCS)
    # plan written, propose and observe left as holes (the last comment is the fakes' tag)
    partly = given_back.replace(HOLE, "return {}  # partly", 1)
    # every body filled with nothing: pass, a bare return, return None, comments
    empty = given_back.replace(HOLE, "pass  # nothing yet", 1).replace(HOLE, "return", 1).replace(HOLE, "return None")
    assert HOLE not in empty and HOLE in partly
    fakes = Fakes([[]], {"partly": valid()}, {"partly": gain(0.0, high=0.0)})
    fakes.generate = lambda r, m, n: [CodeResult(sample=0, temperature=0.2, code=given_back),  # type: ignore[method-assign]
                                      CodeResult(sample=1, temperature=0.5, code=partly),
                                      CodeResult(sample=2, temperature=0.8, code=empty)][:n]
    report = run_session(INPUTS.__class__(**{**INPUTS.__dict__, "samples": 3}), fakes.ports())
    assert [s.sample for s in report.samples] == [1]  # only the partly filled one was validated
    assert [(u.sample, "every hook empty" in u.reason) for u in report.unusable] == [(0, True), (2, True)]


def test_a_patch_that_does_not_fit_is_refused_with_the_reason() -> None:
    fakes = MutantFakes({10: None}, [["fresh"]], {"fresh": failed("policy")}, {})
    fakes.mutate = lambda r, m, sample: CodeResult(sample=sample, temperature=0.5,  # type: ignore[method-assign]
                                                   code="print('no method here')\n")
    report = run_session(mutant_inputs([parent("kept@11", -0.2)], samples=2, mutants=1), fakes.ports())
    entry = next(e for e in report.transcript if e.get("sample") == 10)
    assert entry["stage_failed"] == "no code" and "holds no method" in entry["error"]
    # the report keeps it too (the benchmarks' session records read the report, not the transcript)
    [unusable] = [u for u in report.unusable if u.sample == 10]
    assert unusable.parent == "kept@11" and unusable.change == "rule" and "holds no method" in unusable.reason
    assert 10 not in {s.sample for s in report.samples}


def test_a_mutant_that_dropped_its_parents_constant_keeps_it_through_the_splice() -> None:
    from mechanisms.library import library_source
    from mechanisms.policy import check_source
    from mechanisms.static_check import check_mechanism, summary

    tabu = Parent(label="library:tabu", name="tabu", source=library_source("tabu"))
    # the local model's commonest slip (benchmarks/results/level2-yield-2): the parent's TENURE dropped, still used
    mutant = tabu.source.replace("TENURE = 12  # experiments a configuration or a move stays tabu\n", "").replace(
        "count(p) >= 3", "count(p) >= 2")

    def validate(name: str, attempt: int, source: str) -> dict:  # the real policy and static checks, then `import`
        policy = check_source(source)
        if not policy.ok:
            return failed("policy", policy.summary())
        findings = check_mechanism(source)
        return failed("static", summary(findings)) if findings else failed("import", "not run in this test")

    fakes = MutantFakes({10: None}, [["fresh"]], {}, {})
    fakes.validate = validate  # type: ignore[method-assign]
    fakes.mutate = lambda r, m, sample: CodeResult(sample=sample, temperature=0.5, code=mutant)  # type: ignore[method-assign]
    report = run_session(mutant_inputs([tabu], samples=2, mutants=1), fakes.ports())
    stages = {s.sample: (s.stage_failed, s.parent) for s in report.samples}
    assert stages[10] == ("import", "library:tabu")  # past policy and static (the whole class spliced): next stage


def test_a_mutation_names_the_deciding_hook_a_specified_one_first_and_for_state_init_and_observe() -> None:
    from mechanisms.library import library_source
    from mechanisms.population import methods_to_rewrite

    tabu = library_source("tabu")  # plan, screen, observe
    assert methods_to_rewrite(tabu, "rule", ["propose"]) == ["screen"]  # tabu has no propose: what decides most
    assert methods_to_rewrite(tabu, "threshold", ["plan"]) == ["plan"]  # the specified hook
    assert methods_to_rewrite(tabu, "state", []) == ["__init__", "observe", "screen"]
    assert methods_to_rewrite("class Broken(:", "rule", []) == []  # untrusted: the generic patch request


def test_the_parent_is_shown_with_holes_where_the_methods_to_rewrite_were_and_a_hole_left_is_refused() -> None:
    from mechanisms.library import library_source
    from mechanisms.population import HOLE, with_holes

    tabu = library_source("tabu")
    shown = with_holes(tabu, ["__init__", "observe", "screen"])
    assert shown.count(HOLE) == 2 and "self.configs = []" in shown  # __init__ stays whole: it shows the state
    assert "def screen(self, ctx, candidates):\n        " + HOLE in shown and "allowed = [" not in shown
    assert with_holes("class Broken(:", ["screen"]) == "class Broken(:"
    parent_p = parent("kept@11", -0.2)
    fakes = MutantFakes({10: None}, [["fresh"]], {"fresh": failed("policy")}, {})
    fakes.mutate = lambda r, m, sample: CodeResult(sample=sample, temperature=0.5,  # type: ignore[method-assign]
                                                   code=f"def propose(self, ctx):\n    {HOLE}\n")
    report = run_session(mutant_inputs([parent_p], samples=2, mutants=1), fakes.ports())
    entry = next(e for e in report.transcript if e.get("sample") == 10)
    assert entry["stage_failed"] == "no code" and "left the body of `propose` as `...`" in entry["error"]


def test_unchanged_sees_through_renaming_but_not_a_new_threshold() -> None:
    from mechanisms.library import library_source

    tabu = library_source("tabu")
    renamed = tabu.replace("class TabuSearch", "class Probe").replace('name = "tabu"', 'name = "probe"')
    assert unchanged(renamed.replace('"""Tabu search: screen', '"""Another docstring: screen'), tabu)
    assert not unchanged(renamed.replace("TENURE = 12", "TENURE = 6"), tabu)
    assert not unchanged("class Probe:\x00", tabu) and not unchanged("(" * 500 + ")" * 500, tabu)  # untrusted


def test_the_specification_takes_two_rounds_and_specifies_the_first_idea() -> None:
    # The critique round cost a call per session and chose before it reasoned (benchmarks/results/level2-speed).
    fakes = Fakes([["good"]], {"good": valid()}, {"good": gain(-0.05)})
    report = run_session(INPUTS, fakes.ports())
    assert [name for name, _ in fakes.asked] == ["explore", "specify"]
    assert "Specify the mechanism for: i\n" in fakes.asked[1][1][-1]["content"]
    assert report.accepted is not None


def test_each_repair_round_draws_one_sample() -> None:
    reports = {**{t: failed("policy") for t in "abcd"}, "e": failed("smoke"), "f": failed("liveness")}
    fakes = Fakes([["a", "b", "c", "d"], ["e"], ["f"]], reports, {})
    report = run_session(SessionInputs(**{**INPUTS.__dict__, "samples": 4}), fakes.ports())
    assert [(r, n) for r, _, n in fakes.generated] == [(0, 4), (1, 1), (2, 1)]
    assert report.rounds == 3 and len(report.samples) == 6 and report.verdict.startswith("rejected at liveness")


def test_repairs_end_when_a_round_got_no_sample_further() -> None:
    # Round 1's repair fails at the same stage as the sample it repairs: round 2 would send the same prompt again.
    fakes = Fakes([["a", "b"], ["c"], ["d"]], {"a": failed("smoke"), "b": failed("policy"), "c": failed("smoke"),
                                                "d": valid()}, {"d": gain(-0.05)})
    report = run_session(INPUTS, fakes.ports())
    assert [r for r, _, _ in fakes.generated] == [0, 1]
    assert report.rounds == 2 and report.accepted is None and report.verdict.startswith("rejected at smoke")
    assert "# a" in fakes.generated[1][1][-2]["content"]  # round 1 repaired the furthest sample, a


@pytest.mark.parametrize("hooks", [["propose"], ["propose", "observe"], ["observe"], ["screen"], ["plan", "screen"]])
def test_the_worked_example_is_never_a_one_shot_design(hooks: list[str]) -> None:
    from mechanisms.library import library_source
    from mechanisms.research_session import example_source

    # one_factor was the example for propose specs; its paraphrases changed no simulated outcome on 5 of 10 held-out
    # sessions at c43e9e5 (benchmarks/results/level2-yield-2/ANALYSIS.md)
    assert example_source(hooks) != library_source("one_factor")
    assert any(f"def {hook}(self" in example_source(hooks) for hook in hooks)  # still the wanted structure


def test_a_fresh_sample_is_a_patch_of_the_skeleton_and_its_repair_a_patch_of_the_sample_it_repairs() -> None:
    from search.research import fill_answer

    answers = iter(["def propose(self, ctx):\n    return {}  # first\n",  # the hook only
                    "LIMIT = 3\n\ndef propose(self, ctx):\n    return {}  # fixed\n"])  # the fix and a constant
    fakes = Fakes([], {"first": failed("smoke"), "fixed": valid()}, {"fixed": gain(-0.05)})
    prompts: list[str] = []
    checked: list[str] = []

    def generate(round_index: int, messages: list[dict[str, str]], samples: int) -> list[CodeResult]:
        prompts.append(messages[-1]["content"])
        return [CodeResult(sample=0, temperature=0.5, code=next(answers))]

    def validate(name: str, attempt: int, source: str) -> dict:
        checked.append(source)
        return fakes.reports[fakes.tag(source)]

    fakes.generate, fakes.validate = generate, validate  # type: ignore[method-assign]
    ROUNDS["specify"], saved = {**SPECIFY, "state": "seen"}, ROUNDS["specify"]  # a skeleton with observe too
    try:
        report = run_session(SessionInputs(**{**INPUTS.__dict__, "samples": 1, "repairs": 1}), fakes.ports())
    finally:
        ROUNDS["specify"] = saved
    first, repaired = checked
    assert prompts[0].endswith(fill_answer(["propose", "observe"])) and "with only the methods you fix" in prompts[1]
    assert "with only the methods `propose` and `observe`" in prompts[0]
    # the skeleton's imports, class, name and __init__ around the answer's propose; observe is still a hole
    assert first.startswith("import random") and first.count("class Probe:") == 1 and 'name = "probe"' in first
    assert "def __init__(self):" in first and "return {}  # first" in first and HOLE in first
    # the repair's method and constant went into the sample it repairs
    assert "LIMIT = 3" in repaired and "return {}  # fixed" in repaired and "# first" not in repaired
    assert repaired.count("class Probe:") == 1 and "def __init__(self):" in repaired
    assert report.accepted is not None and report.accepted.round == 1
