"""Finding a workload by reference: a registered name (built in, or an entry point in the group
`bilevel.workloads`), `package.module:Class`, or a path to a script. Every failure is one line naming what was tried."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.run_spec import WorkloadRef
from workloads.base import Workload
from workloads.script import ScriptWorkload, WorkloadError
from workloads.train_sandbox import TrainSandbox

if TYPE_CHECKING:
    from infra.settings import Settings

ENTRY_POINT_GROUP = "bilevel.workloads"
TOY_SCRIPT = Path(__file__).resolve().parent / "toy" / "toy.py"


def _tinygpt(settings: Settings, ref: WorkloadRef) -> Workload:
    from workloads.tinygpt.workload import TinyGPT

    return TinyGPT.from_settings(settings, ref)


def _toy(settings: Settings, ref: WorkloadRef) -> Workload:
    return ScriptWorkload(TOY_SCRIPT, metric="loss", goal="minimize", fixed=ref.fixed, budget_param="STEPS",
                          seed_param="SEED", launch_log=settings.launch_log, reference="toy", edits=ref.edits,
                          max_sites=ref.max_sites)


BUILTIN: dict[str, Callable[[Settings, WorkloadRef], Workload]] = {"tinygpt": _tinygpt, "toy": _toy}


def registered_names() -> list[str]:
    """Built-in names and those installed packages register."""
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def load_workload(ref: WorkloadRef, settings: Settings) -> Workload:
    """The workload `ref` names, with the training sandbox of the settings; WorkloadError (one line) when it cannot
    be found or built, or when its trainings should be confined and cannot be."""
    return _confined(_load(ref, settings), settings)


def _confined(workload: Workload, settings: Settings) -> Workload:
    sandbox = TrainSandbox(mode=settings.train_sandbox, allow_weak=settings.sandbox_allow_weak)
    if isinstance(workload, ScriptWorkload):
        workload.set_train_sandbox(sandbox)
    elif sandbox.applies(workload.edits):
        raise WorkloadError(f"workload {workload.name!r} runs its trainings itself, so the training sandbox cannot "
                            "confine them: use a script workload, or set train_sandbox = never")
    return workload


def _load(ref: WorkloadRef, settings: Settings) -> Workload:
    reference = ref.reference.strip()
    if reference in BUILTIN:
        return _checked(BUILTIN[reference](settings, ref), ref)
    installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if reference in installed:
        try:
            target = installed[reference].load()
        except Exception as error:  # an installed package's import failure: name it, in one line
            raise WorkloadError(f"workload {reference!r} (entry point {installed[reference].value}) failed to import: "
                                f"{type(error).__name__}: {error}") from None
        return _checked(_instantiate(target, settings, ref, reference), ref)
    if _looks_like_path(reference):
        return _checked(_script(Path(reference), ref, settings), ref)
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # the user's module: any import failure becomes one line
            raise WorkloadError(f"workload {reference!r}: importing {module_name!r} failed: "
                                f"{type(error).__name__}: {error}") from None
        target = getattr(module, attribute, None)
        if target is None:
            raise WorkloadError(f"workload {reference!r}: module {module_name!r} has no attribute {attribute!r}")
        return _checked(_instantiate(target, settings, ref, reference), ref)
    raise WorkloadError(f"unknown workload {reference!r}: not a registered name ({', '.join(registered_names())}), "
                        "not package.module:Class, and no such script file")


def _looks_like_path(reference: str) -> bool:
    return reference.endswith(".py") or "/" in reference or Path(reference).expanduser().is_file()


def _script(path: Path, ref: WorkloadRef, settings: Settings) -> Workload:
    if not path.expanduser().is_file():
        raise WorkloadError(f"workload script {path} not found")
    if not ref.metric:
        raise WorkloadError(f"a script workload needs its metric: --metric NAME (the `NAME: value` line {path.name} "
                            "prints after `---`, or the key it writes to metrics.json)")
    return ScriptWorkload(path, metric=ref.metric, goal=ref.goal or "minimize", fixed=ref.fixed,
                          budget_param=ref.budget_param, seed_param=ref.seed_param, command=ref.command,
                          launch_log=settings.launch_log, edits=ref.edits, max_sites=ref.max_sites)


def _instantiate(target: Any, settings: Settings, ref: WorkloadRef, reference: str) -> Workload:
    """A Workload subclass (built with `from_settings(settings, ref)` when it has one), or a factory returning one."""
    try:
        if inspect.isclass(target):
            if not issubclass(target, Workload):
                raise WorkloadError(f"workload {reference!r}: {target.__name__} is not a bilevel Workload subclass")
            factory = getattr(target, "from_settings", None)
            workload = factory(settings, ref) if callable(factory) else target()
        elif callable(target):
            workload = target(settings, ref)
        else:
            raise WorkloadError(f"workload {reference!r} is neither a Workload class nor a factory")
    except WorkloadError:
        raise
    except Exception as error:  # the user's constructor: one line, not a traceback
        raise WorkloadError(f"workload {reference!r} could not be built: {type(error).__name__}: {error}") from None
    if not isinstance(workload, Workload):
        raise WorkloadError(f"workload {reference!r} built a {type(workload).__name__}, not a Workload")
    if (workload.edits, workload.max_sites) != (ref.edits, ref.max_sites):
        workload.set_edits(ref.edits, ref.max_sites)  # a class that does not read them from the reference
    return workload


def _checked(workload: Workload, ref: WorkloadRef) -> Workload:
    """Refuse an option the workload does not apply, and a script that changed since the meta-run that recorded `ref`
    started (resume must train the same)."""
    ignored = ignored_options(ref, workload)
    if ignored:
        raise WorkloadError(f"workload {ref.reference!r} does not take {'; '.join(ignored)}: leave "
                            f"{'it' if len(ignored) == 1 else 'them'} out")
    if ref.script_sha256 and workload.ref.script_sha256 and ref.script_sha256 != workload.ref.script_sha256:
        raise WorkloadError(f"the script of workload {ref.reference!r} changed since this meta-run started "
                            "(its sha256 differs); resume needs the same script (restore it, or start a new run)")
    return workload


def ignored_options(ref: WorkloadRef, workload: Workload) -> list[str]:
    """The options `ref` sets that the built workload would silently not apply, each with what it does instead. A
    workload that fixes its objective (tinygpt, toy) ignores --metric and --goal; only a script given by path takes
    --budget-param, --seed-param and --command. Passing the value the workload has anyway is accepted."""
    objective = workload.objective
    ignored = []
    if ref.metric is not None and ref.metric != objective.name:
        ignored.append(f"--metric {ref.metric!r} (it measures {objective.name})")
    if ref.goal is not None and ref.goal != objective.goal:
        ignored.append(f"--goal {ref.goal} (it {objective.goal}s {objective.name})")
    unapplied = [name for name in ref.fixed if name not in workload.fixed]
    if unapplied:
        ignored.append(f"--fixed {','.join(unapplied)} (it does not apply it)")
    for option, what in (("budget_param", "budget parameter"), ("seed_param", "seed parameter"), ("command", "command")):
        wanted, has = getattr(ref, option), getattr(workload, option, None)
        if wanted is not None and wanted != has:
            ignored.append(f"--{option.replace('_', '-')} {wanted!r} ({f'its {what} is {has!r}' if has else f'it has no {what}'})")
    return ignored
