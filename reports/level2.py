"""Level 2 in a meta-run, read back from its trace (what an imported bundle carries): each research session's verdict,
and each mechanism it activated with its simulated gain and CI, invented or adapted (from what, how closely), its
lineage parents, and the Δ its real trainings credit to it. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, Field

from search.influence import mechanism_influence
from search.trace import Trace

# The two shapes of mechanisms/novelty.py's Novelty.label (a unit test round-trips them, so the two cannot drift).
_NOVELTY = re.compile(r"^(?:derived from (?P<derived>\S+) \(similarity (?P<ds>[0-9.]+)\)"
                      r"|invented \(closest (?P<closest>\S+), similarity (?P<cs>[0-9.]+)\))$")


class Novelty(BaseModel):
    """Invented or adapted, and the closest reference (an adaptation's source) with its similarity."""

    kind: str = Field(description="invented, adapted, or unknown (no or unreadable label).")
    reference: str | None = None
    similarity: float | None = None


def read_novelty(label: str | None) -> Novelty:
    """The parts of a novelty label; `unknown` when there is none or it has another shape."""
    found = _NOVELTY.match(label.strip()) if isinstance(label, str) else None
    if found is None:
        return Novelty(kind="unknown")
    if found["derived"]:
        return Novelty(kind="adapted", reference=found["derived"], similarity=float(found["ds"]))
    return Novelty(kind="invented", reference=found["closest"], similarity=float(found["cs"]))


class Activation(BaseModel):
    """One mechanism a Level 2 session activated, and what happened to it in the real trainings after."""

    generation: int = Field(description="The generation whose end activated it (it ran from the next one).")
    name: str
    version: str
    simulated_delta: float | None = Field(None, description="Simulated Δ of the next generation's best (negative "
                                          "is better) when it was activated.")
    simulated_ci: tuple[float, float] | None = None
    simulated_seeds: int | None = None
    novelty: Novelty = Field(default_factory=lambda: Novelty(kind="unknown"))
    novelty_label: str | None = None
    parents: list[str] = Field(default_factory=list)
    experiments_active: int = 0
    experiments_influenced: int = 0
    kept_influenced: int = 0
    credited_delta: float = Field(0.0, description="The improvements of the kept experiments it influenced (the "
                                  "lineage credit, search/influence.py).")


class Session(BaseModel):
    """One Level 2 research session at the end of a generation."""

    generation: int
    verdict: str
    accepted: str | None = None
    llm_seconds: float = 0.0


class MetaRunLevel2(BaseModel):
    """Level 2 over one meta-run."""

    meta_run_id: str
    sessions: list[Session] = Field(default_factory=list)
    activations: list[Activation] = Field(default_factory=list)


MAX_VERDICT = 400  # verdicts are LLM-influenced text: bounded on the page and in statistics.json


def level2_of(meta_run_id: str, trace: Trace) -> MetaRunLevel2:
    """Every Level 2 session of a trace and every mechanism one of them activated (matched by its label to the active
    set recorded at the end of that generation), with the credit its real trainings gave it."""
    credit = {(m.name, m.version): m for m in mechanism_influence({meta_run_id: trace})}
    result = MetaRunLevel2(meta_run_id=meta_run_id)
    for end in trace.generation_ends:
        decision = end.level2
        if decision is None:
            continue
        result.sessions.append(Session(generation=end.generation, verdict=decision.verdict[:MAX_VERDICT],
                                       accepted=decision.accepted, llm_seconds=decision.llm.seconds))
        if decision.accepted is None:
            continue
        # `accepted` is the mechanism's label (name@ the first 12 characters of its VersionId). An import into another
        # store renames labels too (infra/transfer.py), but one imported by an older version kept the old label: then
        # the mechanism is the one of that name that this session produced (its origin).
        name, _, version = decision.accepted.partition("@")
        mechanism = next((m for m in end.active.mechanisms if m.label == decision.accepted), None) or next(
            (m for m in end.active.mechanisms if m.name == name and m.origin == f"{meta_run_id}/g{end.generation}"), None)
        if mechanism is None:  # the label without the record (a trace from before sources were kept)
            result.activations.append(Activation(generation=end.generation, name=name, version=version))
            continue
        influence = credit.get((mechanism.name, mechanism.version))
        simulated = mechanism.simulated
        result.activations.append(Activation(
            generation=end.generation, name=mechanism.name, version=mechanism.version,
            simulated_delta=simulated.delta if simulated else None,
            simulated_ci=(simulated.ci_low, simulated.ci_high) if simulated else None,
            simulated_seeds=simulated.seeds if simulated else None,
            novelty=read_novelty(mechanism.novelty), novelty_label=mechanism.novelty, parents=list(mechanism.parents),
            experiments_active=influence.experiments_active if influence else 0,
            experiments_influenced=influence.experiments_influenced if influence else 0,
            kept_influenced=sum(1 for i in influence.iterations if i.kept) if influence else 0,
            credited_delta=influence.credited_delta if influence else 0.0,
        ))
    return result


def level2_of_runs(traces: Mapping[str, Trace]) -> list[MetaRunLevel2]:
    """Level 2 of every meta-run that ran at least one research session, in the given order."""
    return [entry for entry in (level2_of(meta_run_id, trace) for meta_run_id, trace in traces.items())
            if entry.sessions]


class Level2Totals(BaseModel):
    """Level 2 over an arm's meta-runs, in numbers."""

    meta_runs: int = 0
    sessions: int = 0
    activations: int = 0
    invented: int = 0
    adapted: int = 0
    credited_delta: float = 0.0
    mean_simulated_delta: float | None = None


def level2_totals(runs: list[MetaRunLevel2]) -> Level2Totals:
    activations = [a for run in runs for a in run.activations]
    simulated = [a.simulated_delta for a in activations if a.simulated_delta is not None]
    return Level2Totals(meta_runs=len(runs), sessions=sum(len(r.sessions) for r in runs), activations=len(activations),
                        invented=sum(1 for a in activations if a.novelty.kind == "invented"),
                        adapted=sum(1 for a in activations if a.novelty.kind == "adapted"),
                        credited_delta=sum(a.credited_delta for a in activations),
                        mean_simulated_delta=sum(simulated) / len(simulated) if simulated else None)
