"""One experiment as the cells of a progress line: the CLI's live table and the flow run's log say the same."""

from __future__ import annotations

import json

from search.trace import Experiment


def experiment_cells(experiment: Experiment, best: float | None) -> tuple[str, ...]:
    """index, generation, status, value, best so far, decision (who decided, who proposed), changes."""
    value = experiment.measured
    decision = "baseline" if experiment.is_baseline else ("kept" if experiment.kept else "discarded")
    if experiment.decided_by:
        decision += f" ({experiment.decided_by})"
    if experiment.proposed_by and experiment.proposed_by not in ("llm", "baseline"):
        decision += f" [{experiment.proposed_by}]"
    return (
        str(experiment.index), str(experiment.generation), experiment.outcome.status,
        f"{value:.4f}" if value is not None else "-", f"{best:.4f}" if best is not None else "-", decision,
        json.dumps(experiment.changes) if experiment.changes else "",
    )


def event_line(event: str, data: dict) -> str | None:
    """The one log line of a meta-run event (None for events that have none)."""
    if event == "baseline":
        experiment = data["experiment"]
        return "baseline  " + "  ".join(cell for cell in experiment_cells(experiment, experiment.measured) if cell)
    if event == "experiment":
        return "experiment  " + "  ".join(cell for cell in experiment_cells(data["experiment"], data["best"]) if cell)
    if event == "resumed":
        return f"resumed from the trace: {data['experiments']} decided experiments are not run again"
    if event == "generation":
        active = ", ".join(data.get("active") or []) or "none"
        return f"generation {data['generation']} done: best {data['best']:.4f}; mechanisms: {active}"
    return None
