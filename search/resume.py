"""Resuming a meta-run from its trace alone: which decisions are already taken, and what each generation and track
starts from. Pure: the flows compose these, so a resumed run never trains or asks again what its trace holds."""

from __future__ import annotations

from pydantic import BaseModel, Field

from search.active_set import ActiveSet
from search.config import SearchConfig
from search.iteration import merge_tracks
from search.objective import Objective
from search.run_spec import MetaRunSpec, llm_usage
from search.trace import Experiment, GenerationStart, Trace


class ResumeError(ValueError):
    """The trace on disk cannot continue under this spec (one line a user can act on)."""


def check_resumable(trace: Trace, spec: MetaRunSpec, objective: Objective) -> None:
    """Refuse a trace that another objective or a smaller run wrote: its decisions would not be this run's."""
    if (trace.objective.name, trace.objective.goal) != (objective.name, objective.goal):
        raise ResumeError(f"the trace of {spec.meta_run_id} optimises {trace.objective.describe()}, but the workload "
                          f"{objective.describe()}: start a new meta-run id")
    for experiment in trace.decided:
        if (experiment.generation >= spec.generations or experiment.track >= spec.tracks
                or experiment.iteration >= spec.iterations):
            raise ResumeError(
                f"the trace of {spec.meta_run_id} holds experiment #{experiment.index} (generation "
                f"{experiment.generation}, track {experiment.track}, iteration {experiment.iteration}) outside this "
                f"spec ({spec.generations} generations x {spec.tracks} tracks x {spec.iterations} iterations)")


def generation_inputs(trace: Trace, generation: int, config: SearchConfig, active: ActiveSet) -> tuple[SearchConfig, ActiveSet]:
    """What `generation` searches with: what its start record says when it had begun (a resume mid-generation),
    else `config` and `active` (what the previous generation decided, or the run's start)."""
    record = trace.generation_start(generation)
    if record is None:
        return config, active
    return record.config, record.active if record.active is not None else active


def begin_generation(trace: Trace, generation: int, config: SearchConfig, active: ActiveSet,
                     restart_each_generation: bool = False) -> Trace:
    """The trace with the start of `generation` recorded: the record already there when the generation had begun
    (its experiments are numbered from it), else a new one at the current length. The restart-only control arm
    hides earlier generations from prompts and hooks (it still starts from best)."""
    record = trace.generation_start(generation)
    if record is not None:
        if record.active is None:  # a trace written before the start recorded its mechanisms
            return trace.with_generation(record.model_copy(update={"active": active}))
        return trace
    start = len(trace)
    return trace.with_generation(GenerationStart(generation=generation, start=start, config=config, active=active,
                                                 visible_from=start if restart_each_generation else 0))


class GenerationSplit(BaseModel):
    """A generation as its tracks resume it: the trace before it began, and each track's decided experiments."""

    base: Trace
    decided: dict[int, list[Experiment]] = Field(default_factory=dict)

    def of_track(self, track: int) -> list[Experiment]:
        return self.decided.get(track, [])

    def merged(self, tracks: int) -> Trace:
        """The trace holding every decided experiment, tracks in order (as merge_tracks numbers them)."""
        return merge_tracks(self.base, [self.of_track(track) for track in range(tracks)])


def split_generation(trace: Trace, generation: int) -> GenerationSplit:
    """The trace before `generation` began (with its start record), and per track its decided experiments numbered
    as the track saw them (start + iteration). A track's decisions are a prefix 0..n-1 of its iterations, since a
    track decides in order; anything else is a damaged trace."""
    record = trace.generation_start(generation)
    if record is None:
        raise ResumeError(f"the trace has no record of how generation {generation} began")
    base = trace.with_experiments(trace.experiments[: record.start])
    decided: dict[int, list[Experiment]] = {}
    for experiment in trace.experiments[record.start:]:
        if experiment.generation != generation:  # traces written before generations recorded their end
            raise ResumeError(f"the trace holds experiments of generation {experiment.generation} but no record of how "
                              f"generation {generation} ended: written by an older version, it cannot be resumed; start it "
                              "afresh (move its run folder aside, then run the same command again)")
        decided.setdefault(experiment.track, []).append(experiment)
    for track, experiments in decided.items():
        experiments.sort(key=lambda e: e.iteration)
        iterations = [e.iteration for e in experiments]
        if iterations != list(range(len(experiments))):
            raise ResumeError(f"track {track} of generation {generation} decided iterations {iterations}, not a "
                              "prefix 0, 1, ...: the trace is damaged")
        decided[track] = [e.model_copy(update={"index": record.start + e.iteration}) for e in experiments]
    return GenerationSplit(base=base, decided=decided)


def track_history(split: GenerationSplit, track: int) -> Trace:
    """The trace as `track` stands after its decided experiments: what its inner loop continues from."""
    return split.base.with_experiments([*split.base.experiments, *split.of_track(track)])


def limits_for_the_rest(trace: Trace, spec: MetaRunSpec, *, hours: float | None = None,
                        cost_usd: float | None = None) -> MetaRunSpec:
    """The spec with new limits for the rest of a resumed run: `hours` more of work and `cost_usd` more of LLM calls
    on top of what the trace says was already spent (the limits count the whole run)."""
    update: dict[str, float] = {}
    if hours is not None:
        update["max_hours"] = trace.elapsed_s / 3600 + hours
    if cost_usd is not None:
        update["max_llm_cost_usd"] = llm_usage(trace).cost_usd + cost_usd
    return spec.model_validate({**spec.model_dump(), **update}) if update else spec
