"""What an ablation is: arms (levels and controls) x paired repeats, and the manifest that lists their meta-runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from search.objective import Objective
from search.run_spec import Proposer


class ArmSpec(BaseModel):
    """One arm: which levels run, who proposes, and whether the inner loop restarts each generation."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    levels: tuple[str, ...] = ("1",)
    proposer: Proposer | None = Field(None, description="Who proposes; None: the configured proposer (the "
                                                        "`proposer` setting, what `bilevel run` uses).")
    restart_each_generation: bool = False
    mechanisms: tuple[str, ...] = Field((), description="Mechanisms active from the start (library:<name>).")
    description: str = ""


STANDARD_ARMS: dict[str, ArmSpec] = {
    "A": ArmSpec(name="A", levels=("1",), description="Level 1 only"),
    "llm": ArmSpec(name="llm", levels=("1",), proposer="llm", description="control: Level 1 with the LLM alone"),
    "B": ArmSpec(name="B", levels=("1", "1.5"), description="Level 1 + 1.5"),
    "C": ArmSpec(name="C", levels=("1", "1.5", "2"), description="Level 1 + 1.5 + 2"),
    "D": ArmSpec(name="D", levels=("1", "2"), description="Level 1 + 2"),
    "restart": ArmSpec(name="restart", levels=("1",), restart_each_generation=True,
                       description="control: inner loop restarted from the best config every generation"),
    "random": ArmSpec(name="random", levels=("1",), proposer="random",
                      description="control: random search over the same parameter space"),
    "tpe": ArmSpec(name="tpe", levels=("1",), proposer="tpe", description="control: Optuna TPE"),
    "cmaes": ArmSpec(name="cmaes", levels=("1",), proposer="cmaes", description="control: Optuna CMA-ES"),
    "hybrid": ArmSpec(name="hybrid", levels=("1",), proposer="hybrid",
                      description="control: TPE's suggestions offered to the LLM, which picks, edits or overrides"),
    "library": ArmSpec(name="library", levels=("1",),
                       mechanisms=("library:one_factor", "library:tabu", "library:ucb_bandit"),
                       description="Level 1 with the reference mechanisms active from the start"),
}


class ArmRuns(BaseModel):
    arm: ArmSpec
    meta_run_ids: list[str] = Field(default_factory=list, description="One per repeat, in seed order (paired).")


class AblationManifest(BaseModel):
    """Written when an ablation starts (it lists every meta-run id up front): the report reads it."""

    ablation_id: str
    created: str
    workload: str
    objective: Objective = Field(default_factory=Objective)
    model: str
    budget_mode: str
    budget: float
    generations: int
    iterations: int
    seeds: list[int]
    reference_arm: str = "A"
    reference_arms: list[str] = Field(default_factory=list, description="Every arm the others are tested against.")
    comparisons: list[tuple[str, str]] = Field(default_factory=list, description="Planned (arm, reference) pairs: "
                                               "when given, exactly these are tested (one Holm family) instead of "
                                               "every arm against each reference arm.")
    arms: list[ArmRuns]


def manifest_path(state_dir: Path, ablation_id: str) -> Path:
    """Where an ablation's manifest lives under a state directory (the flow writes it, the report reads it)."""
    return state_dir / "ablations" / ablation_id / "manifest.json"


MAX_REPEATS = 100  # one home for the bound: AblationSpec.repeats and --only-repeats use it


def parse_repeats(text: str, total: int) -> list[int]:
    """`--only-repeats`: `3-5`, `3,5,7` or a mix (`0-2,7`), repeat indices from 0, each below `total`; sorted,
    without duplicates. ValueError with a one-line message for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--only-repeats needs repeat numbers, e.g. 3-5 or 3,5,7")
    chosen: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        low_text, dash, high_text = part.partition("-")
        if not low_text.strip().isdigit() or (dash and not high_text.strip().isdigit()):
            raise ValueError(f"--only-repeats: {part!r} is not a repeat number or a range like 3-5")
        low = int(low_text)
        high = int(high_text) if dash else low
        if high < low:
            raise ValueError(f"--only-repeats: the range {part!r} runs backwards")
        if high >= total:
            raise ValueError(f"--only-repeats: repeat {high} is beyond --repeats {total} (repeats are numbered "
                             f"0..{total - 1}); raise --repeats to the study's full size")
        chosen.update(range(low, high + 1))
    return sorted(chosen)


def parse_comparisons(text: str) -> list[tuple[str, str]]:
    """`--compare`: `C-A,C-library,A-tpe`, each `arm-reference` (the difference arm − reference), standard arm names,
    each pair once. ValueError with a one-line message for anything else."""
    pairs: list[tuple[str, str]] = []
    for part in (p.strip() for p in (text or "").split(",")):
        arm, dash, reference = part.partition("-")
        if not dash or not arm or not reference or "-" in reference:
            raise ValueError(f"--compare: {part!r} is not a pair like C-A (arm minus reference arm)")
        unknown = [name for name in (arm, reference) if name not in STANDARD_ARMS]
        if unknown:
            raise ValueError(f"--compare: unknown arm {unknown[0]!r} in {part!r}; choose from {sorted(STANDARD_ARMS)}")
        if arm == reference:
            raise ValueError(f"--compare: {part!r} compares an arm with itself")
        if (arm, reference) in pairs or (reference, arm) in pairs:
            raise ValueError(f"--compare: the arms of {part!r} are compared twice")
        pairs.append((arm, reference))
    return pairs


# What must agree between two shards of one ablation for their repeats to be paired and comparable.
COMPATIBLE_FIELDS = ("workload", "objective", "model", "budget_mode", "budget", "generations", "iterations")


def merge_manifests(existing: AblationManifest, new: AblationManifest) -> AblationManifest:
    """One ablation's manifest after another shard (or a rerun) of it: arms and repeats accumulate, the first
    manifest's creation time and reference arms stay. Refuses shards that ran under other conditions (a different
    workload, budget, LLM, ...) or seeds that do not line up, since their repeats would not be paired."""
    if existing.ablation_id != new.ablation_id:
        raise ValueError(f"cannot merge the manifests of ablations {existing.ablation_id!r} and {new.ablation_id!r}")
    differ = [name for name in COMPATIBLE_FIELDS if getattr(existing, name) != getattr(new, name)]
    if differ:
        detail = ", ".join(f"{n}: {getattr(existing, n)!s:.60} vs {getattr(new, n)!s:.60}" for n in differ)
        raise ValueError(f"ablation {existing.ablation_id!r} was started under other conditions ({detail}); its "
                         "repeats would not be comparable: use another --id, or the same options")
    shorter, longer = sorted((existing.seeds, new.seeds), key=len)
    if longer[: len(shorter)] != shorter:
        raise ValueError(f"ablation {existing.ablation_id!r} uses seeds {existing.seeds[:5]}..., this run "
                         f"{new.seeds[:5]}...: the repeats would not be paired (use the same first seed)")
    if existing.comparisons and new.comparisons and existing.comparisons != new.comparisons:
        raise ValueError(f"ablation {existing.ablation_id!r} planned the comparisons "
                         f"{_pairs_text(existing.comparisons)}; this run plans {_pairs_text(new.comparisons)}: a study's "
                         "tests are fixed once (leave --compare out, or pass the same pairs)")
    arms = {item.arm.name: item for item in existing.arms}
    for item in new.arms:
        old = arms.get(item.arm.name)
        if old is not None and old.arm != item.arm:
            raise ValueError(f"arm {item.arm.name!r} of ablation {existing.ablation_id!r} is defined differently "
                             "in the two manifests")
        ids = list(old.meta_run_ids) if old else []
        for position, meta_run_id in enumerate(item.meta_run_ids):
            if position >= len(ids):
                ids.append(meta_run_id)
            elif ids[position] != meta_run_id:
                raise ValueError(f"ablation {existing.ablation_id!r}, arm {item.arm.name}, repeat {position}: "
                                 f"{ids[position]!r} vs {meta_run_id!r} in the two manifests")
        arms[item.arm.name] = ArmRuns(arm=item.arm, meta_run_ids=ids)
    return existing.model_copy(update={"seeds": longer, "arms": list(arms.values()),
                                       "comparisons": existing.comparisons or new.comparisons})


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f"{arm}-{reference}" for arm, reference in pairs)


class RepeatCoverage(BaseModel):
    """Which repeats of an ablation are complete (every arm has a finished run for its seed), and what is missing."""

    complete: list[int] = Field(default_factory=list, description="Repeat indices the statistics are built from.")
    missing: dict[int, dict[str, str]] = Field(default_factory=dict, description="Per incomplete repeat: the arms "
                                               "whose run is not finished, and why.")

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def describe(self) -> str:
        """One line for users: which repeats are in, which are missing."""
        text = f"{len(self.complete)} complete repeat(s)" + (f" ({format_repeats(self.complete)})" if self.complete else "")
        if self.missing:
            text += f"; missing: {format_repeats(sorted(self.missing))}"
        return text


def repeat_coverage(problems: dict[str, list[str | None]], repeats: int) -> RepeatCoverage:
    """`problems[arm][r]` is None when arm's run of repeat r finished, else why not (a list shorter than `repeats`
    means the later repeats were never listed). A repeat is complete when no arm has a problem with it."""
    coverage = RepeatCoverage()
    for repeat in range(repeats):
        why = {arm: (items[repeat] if repeat < len(items) else "not started")
               for arm, items in problems.items()}
        missing = {arm: reason for arm, reason in why.items() if reason is not None}
        if missing or not problems:
            coverage.missing[repeat] = missing
        else:
            coverage.complete.append(repeat)
    return coverage


def format_repeats(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts: list[str] = []
    start = previous = None
    for value in values:
        if previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(f"{start}-{previous}" if previous != start else f"{start}")
        start = previous = value
    if start is not None:
        parts.append(f"{start}-{previous}" if previous != start else f"{start}")
    return ", ".join(parts)
