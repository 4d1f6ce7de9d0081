"""The live progress display of a meta-run and its final summary table (rich). Text that comes from an LLM, a
mechanism or a script (changes, notes, errors) is printed as plain text, never read as Rich markup."""

from __future__ import annotations

import json
import threading
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from search.objective import Objective
from search.progress_line import experiment_cells
from search.run_spec import MetaRunSummary
from search.trace import Experiment

STATUS_STYLE = {"ok": "green", "crash": "red", "timeout": "yellow", "invalid": "magenta", "stopped": "cyan"}


class RunProgress:
    """Receives the meta-run's events (Resources.on_event) and renders them live: a progress bar and the
    last experiments (iteration, status, value, best so far)."""

    def __init__(self, console: Console, total: int, objective: Objective, show_rows: int = 12) -> None:
        self.console = console
        self.objective = objective
        self.show_rows = show_rows
        self.rows: list[tuple[Text, ...]] = []
        self._lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("baseline", total=total)
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> RunProgress:
        if self.console.is_terminal:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.console.is_terminal:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def _render(self) -> Group:
        table = Table(box=None, pad_edge=False, expand=False)
        for column in ("#", "gen", "status", self.objective.name, "best", "decision", "changes"):
            table.add_column(column, no_wrap=column != "changes", overflow="fold")
        for row in self.rows[-self.show_rows :]:
            table.add_row(*row)
        return Group(self.progress, table)

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            if event == "baseline":
                self._add(data["experiment"], data["experiment"].measured)
                self.progress.update(self.task, description="searching")
            elif event == "experiment":
                self._add(data["experiment"], data["best"])
                self.progress.advance(self.task)
            elif event == "resumed":
                self.progress.advance(self.task, data["experiments"])
                self.progress.update(self.task, description="searching")
                self.console.log(Text(f"resumed from the trace: {data['experiments']} decided experiments are not run again"))
            elif event == "generation":
                active = ", ".join(data.get("active") or []) or "none"
                self.console.log(Text(f"generation {data['generation']} done: best {data['best']:.4f}; mechanisms: {active}"))
                for note in data.get("notes") or []:
                    self.console.log(Text(f"  {note}"))
            if self.console.is_terminal:
                self.live.update(self._render())

    def _add(self, experiment: Experiment, best: float | None) -> None:
        status = experiment.outcome.status
        cells = experiment_cells(experiment, best)
        row = tuple(Text(cell, style=STATUS_STYLE.get(status, "") if position == 2 else "")
                    for position, cell in enumerate(cells))
        self.rows.append(row)
        if not self.console.is_terminal:  # a log file or a pipe gets one line per experiment instead of a live table
            self.console.print(Text("  ".join(cell for cell in cells if cell)), soft_wrap=True)


def summary_table(summary: MetaRunSummary, *, tracking_uri: str, prefect_home: str) -> Table:
    """The final table: baseline, best, Δ, keep rate, crashes, LLM tokens and cost, where to look."""
    name = summary.objective.name
    table = Table(title=f"meta-run {summary.meta_run_id}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    counts = summary.counts

    def row(label: str, value: str) -> None:
        table.add_row(label, Text(value))

    row("objective", summary.objective.describe())
    row(f"baseline {name}", f"{summary.baseline_value:.4f}")
    row(f"best {name}", f"{summary.best_value:.4f} (experiment #{summary.best_index})")
    row("Δ (negative is better)", f"{summary.delta:+.4f}")
    row("experiments", f"{counts.experiments} ({counts.kept} kept, keep rate {counts.keep_rate:.0%})")
    row("crashes / invalid", f"{counts.crashes} / {counts.invalid}" + (f" / {counts.stopped} stopped early" if counts.stopped else ""))
    row("LLM", f"{summary.llm.calls} calls, {summary.llm.total_tokens} tokens, ${summary.llm.cost_usd:.4f}, "
               f"{summary.llm.seconds:.0f} s")
    row("best changes vs baseline", json.dumps(summary.best_changes) if summary.best_changes else "none")
    if summary.stop_reason != "finished":
        row("stopped early", f"{summary.stop_detail} (resume with `bilevel resume {summary.meta_run_id}`)")
    if summary.mechanisms:
        row("mechanisms at the end", ", ".join(f"{m['name']}@{str(m['version'])[:12]}" + _simulated(m.get("simulated"))
                                                + (f", {m['novelty']}" if m.get("novelty") else "")
                                                for m in summary.mechanisms))
    row("trace", summary.trace_path or "-")
    row("MLflow", f"{tracking_uri}  experiment '{summary.mlflow_experiment}', run {summary.mlflow_run_id}")
    row("", "UI: bilevel ui   (MLflow on http://127.0.0.1:5000)")
    row("Prefect", f"flow run '{summary.meta_run_id}' (PREFECT_HOME={prefect_home})")
    return table


def _simulated(gain: dict | None) -> str:
    """` (simulated Δ -0.012, CI -0.020 to -0.004)` for a mechanism Level 2 activated by its simulated benefit."""
    if not gain:
        return ""
    return f" (simulated Δ {gain['delta']:+.4g}, CI {gain['ci_low']:+.4g} to {gain['ci_high']:+.4g})"
