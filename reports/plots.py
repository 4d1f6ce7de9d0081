"""PNG figures of a report (matplotlib's Agg canvas, no pyplot state): best-so-far curves per arm, Δ
distributions per arm, and one meta-run's experiments with its kept changes. Every label names the objective and
its direction; raw axes show raw values (a maximised metric's best is up), Δ axes are sign-corrected (negative is
better). Okabe-Ito colours (colour-blind safe), with line styles and markers as a second cue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from reports.stats import ArmStats
from reports.wording import best_so_far_label, delta_formula, delta_label, value_label
from search.objective import Objective
from search.trace import Experiment, Trace

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
REFERENCE_COLOUR = "#000000"
LINE_STYLES = ("-", "--", "-.", ":")
GREY = "#8c8c8c"
KEPT_COLOUR = "#0072B2"
CRASH_COLOUR = "#D55E00"
STOPPED_COLOUR = "#E69F00"
NOISE_COLOUR = "#bdbdbd"
MECHANISM_COLOUR = "#CC79A7"
DPI = 110
MAX_ANNOTATIONS = 12
MAX_GENERATION_LABELS = 16
# Where a label may go relative to its point (points): right, then left, at growing heights above and below.
LABEL_OFFSETS = [(dx, dy) for dy in (12, -12, 26, -26, 40, -40) for dx in (8, -8)]
ANNOTATION_CHARS = 34
WIDE_BAND_BELOW = 5
MIN_VALUE_SPAN = 0.05

Curve = Sequence[float | None]  # best-so-far value per experiment index of one repeat (index 0: baseline)


def arm_colours(arms: Sequence[str], reference: str | None = None) -> dict[str, str]:
    """A fixed colour per arm: the (first) reference arm black, the others Okabe-Ito in order."""
    others = iter(OKABE_ITO * (len(arms) // len(OKABE_ITO) + 1))
    return {arm: REFERENCE_COLOUR if arm == reference else next(others) for arm in arms}


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, facecolor="white")
    return path


def curve_band(curves: Sequence[Curve], relative: bool, wide: bool,
               objective: Objective | None = None) -> tuple[np.ndarray, ...]:
    """(x, median, low, high) across repeats at each experiment index: the band is min-max when `wide`, else the
    interquartile range. Repeats enter at each index they reached with a measured best; `relative` turns each
    value into its Δ against the repeat's own baseline, sign-corrected by the objective (negative is better)."""
    objective = objective or Objective()
    length = max((len(c) for c in curves), default=0)
    matrix = np.full((len(curves), length), np.nan)
    for row, curve in enumerate(curves):
        values = np.array([np.nan if v is None else v for v in curve], dtype=float)
        if relative:
            baseline = values[0] if len(values) else np.nan
            values = np.array([np.nan if np.isnan(baseline) or np.isnan(v) else objective.delta(baseline, v)
                               for v in values], dtype=float)
        matrix[row, : len(values)] = values
    present = ~np.all(np.isnan(matrix), axis=0)
    data = matrix[:, present]
    low_q, high_q = (0, 100) if wide else (25, 75)
    return (np.arange(length)[present], np.nanmedian(data, axis=0), np.nanpercentile(data, low_q, axis=0),
            np.nanpercentile(data, high_q, axis=0))


def plot_best_so_far(curves: Mapping[str, Sequence[Curve]], path: Path, *, objective: Objective | None = None,
                     references: Sequence[str] = ()) -> Path:
    return _save(best_so_far_figure(curves, objective=objective, references=references), path)


def best_so_far_figure(curves: Mapping[str, Sequence[Curve]], *, objective: Objective | None = None,
                       references: Sequence[str] = ()) -> Figure:
    """Two panels: the best value so far (raw: a maximised metric rises), and Δ best-so-far against each repeat's
    own baseline (sign-corrected: negative is better), median and band per arm."""
    objective = objective or Objective()
    figure = _figure(11.5, 4.8)
    raw_axes, delta_axes = figure.subplots(1, 2)
    reference = references[0] if references else None
    colours = arm_colours(list(curves), reference)
    usable = {arm: [c for c in arm_curves if c] for arm, arm_curves in curves.items()}
    # With few repeats quartiles are interpolations between two or three curves: show the full range instead.
    # One rule for all arms, so that bands are comparable.
    wide = min((len(c) for c in usable.values() if c), default=0) < WIDE_BAND_BELOW
    for position, (arm, arm_curves) in enumerate(usable.items()):
        if not arm_curves:
            continue
        style = "-" if arm == reference else LINE_STYLES[position % len(LINE_STYLES)]
        label = f"{arm} (n={len(arm_curves)}{', reference' if arm in references else ''})"
        for axes, relative in ((raw_axes, False), (delta_axes, True)):
            x, median, low, high = curve_band(arm_curves, relative, wide, objective)
            axes.fill_between(x, low, high, color=colours[arm], alpha=0.15, linewidth=0, step="post")
            axes.step(x, median, where="post", color=colours[arm], linestyle=style, linewidth=2, label=label)
    figure.suptitle(f"{objective.describe()} · median across repeats; band: "
                    f"{'min–max' if wide else 'interquartile range'}", fontsize=10, color="#444444")
    raw_axes.set_title(f"Best {objective.name} so far")
    raw_axes.set_ylabel(best_so_far_label(objective))
    delta_axes.set_title(f"Δ best-so-far ({delta_formula(objective)} of the same repeat)")
    delta_axes.set_ylabel(delta_label(objective))
    delta_axes.axhline(0.0, color=GREY, linewidth=0.8)
    for axes in (raw_axes, delta_axes):
        axes.set_xlabel("experiment index (0 = baseline)")
        axes.grid(True, alpha=0.3)
    handles, labels = raw_axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(6, len(handles)), fontsize=9,
                      frameon=False)
    return figure


def plot_deltas(arms: Sequence[ArmStats], path: Path, *, objective: Objective | None = None,
                references: Sequence[str] = ()) -> Path:
    return _save(deltas_figure(arms, objective=objective, references=references), path)


def deltas_figure(arms: Sequence[ArmStats], *, objective: Objective | None = None,
                  references: Sequence[str] = ()) -> Figure:
    """Δ per repeat for each arm (sign-corrected: negative is better): a box, every repeat as a point, the mean as a
    diamond, n under the label, and a grey band of ± the arm's noise floor (median over repeats) around 0."""
    objective = objective or Objective()
    figure = _figure(max(6.0, 1.3 * len(arms) + 3), 4.6)
    axes = figure.subplots()
    colours = arm_colours([a.arm for a in arms], references[0] if references else None)
    jitter = np.random.default_rng(0)  # fixed, so the same data gives the same picture
    for position, arm in enumerate(arms, start=1):
        if arm.noise_floor is not None:
            axes.fill_between([position - 0.34, position + 0.34], -arm.noise_floor, arm.noise_floor,
                              color=NOISE_COLOUR, alpha=0.45, linewidth=0, zorder=1)
        values = [d for d in arm.deltas if d is not None]
        if not values:
            continue
        if len(values) >= 3:
            axes.boxplot([values], positions=[position], widths=0.5, showfliers=False, patch_artist=True,
                         boxprops={"facecolor": colours[arm.arm], "alpha": 0.18, "edgecolor": colours[arm.arm]},
                         medianprops={"color": colours[arm.arm], "linewidth": 2},
                         whiskerprops={"color": colours[arm.arm]}, capprops={"color": colours[arm.arm]})
        offsets = jitter.uniform(-0.12, 0.12, size=len(values))
        axes.scatter(position + offsets, values, s=36, color=colours[arm.arm], edgecolor="white", linewidth=0.6, zorder=3)
        axes.scatter([position + 0.32], [np.mean(values)], marker="D", s=42, color=colours[arm.arm],
                     edgecolor="black", linewidth=0.6, zorder=4)
    axes.set_xticks(range(1, len(arms) + 1), [f"{a.arm}\nn={a.n}" for a in arms])
    axes.set_xlim(0.4, len(arms) + 0.7)
    axes.axhline(0.0, color=GREY, linewidth=0.8)
    axes.set_title(f"Δ {objective.name} per repeat ({delta_formula(objective)})")
    axes.set_ylabel(delta_label(objective))
    axes.grid(True, axis="y", alpha=0.3)
    legend = [Line2D([], [], marker="o", linestyle="", color=GREY, label="one repeat"),
              Line2D([], [], marker="D", linestyle="", color=GREY, markeredgecolor="black", label="mean"),
              Line2D([], [], color=GREY, linewidth=2, label="box: median and quartiles (n ≥ 3)")]
    if any(a.noise_floor is not None for a in arms):
        legend.append(Line2D([], [], color=NOISE_COLOUR, linewidth=8, alpha=0.8, label="± noise floor (median)"))
    axes.legend(handles=legend, loc="best", fontsize=8, framealpha=0.9)
    return figure


@dataclass(frozen=True)
class ValueWindow:
    """The y-range of a run's plot and which of its edges is the worse one: values beyond the worse edge are drawn
    on it as off-scale (a diverged run must not squash the picture); failures sit there too."""

    low: float
    high: float
    minimize: bool

    @property
    def worse_edge(self) -> float:
        return self.high if self.minimize else self.low

    @property
    def better_edge(self) -> float:
        return self.low if self.minimize else self.high

    def off_scale(self, value: float) -> bool:
        return value > self.high if self.minimize else value < self.low

    def limits(self) -> tuple[float, float]:
        """Axis limits with room on the worse side for the markers drawn on its edge."""
        pad = (self.high - self.low) * 0.04
        return (self.low, self.high + pad) if self.minimize else (self.low - pad, self.high)


def plot_run(trace: Trace, path: Path, *, title: str = "", noise_floor: float | None = None) -> Path:
    return _save(run_figure(trace, title=title, noise_floor=noise_floor), path)


def run_figure(trace: Trace, *, title: str = "", noise_floor: float | None = None) -> Figure:
    """One meta-run: its value per experiment (kept, discarded, failed, stopped early), the best-so-far line, the
    baseline (± the noise floor when measured), generation boundaries, where a mechanism changed a decision, and
    labels of the kept changes. Raw values: for a maximised metric higher is up and is better."""
    objective = trace.objective
    figure = _figure(11.5, 5.2)
    axes = figure.subplots()
    experiments = trace.experiments
    measured = [(e.index, e.measured) for e in experiments if e.measured is not None]
    baseline = experiments[0].measured if experiments else None
    window = _value_range([v for _, v in measured], baseline, objective)
    edge = window.worse_edge
    beyond = [(i, v) for i, v in measured if window.off_scale(v)]
    shown = {i: v for i, v in measured if not window.off_scale(v)}
    discarded = [(e.index, shown[e.index]) for e in experiments[1:] if e.index in shown and not e.kept]
    kept = [(e.index, shown[e.index]) for e in experiments[1:] if e.index in shown and e.kept]
    stopped = [e.index for e in experiments if e.measured is None and e.outcome.status == "stopped"]
    failed = [e.index for e in experiments if e.measured is None and e.outcome.status != "stopped"]
    _points(axes, discarded, marker="o", size=30, face="none", edge=GREY, label="discarded")
    _points(axes, kept, marker="o", size=56, face=KEPT_COLOUR, edge="white", label="kept")
    _points(axes, [(i, edge) for i, _ in beyond], marker="^" if objective.minimize else "v", size=40, face=GREY,
            edge=GREY, label=f"{'above' if objective.minimize else 'below'} {edge:.3f} (off scale, worse)")
    _points(axes, [(i, edge) for i in failed], marker="X", size=50, face=CRASH_COLOUR, edge="white",
            label=f"no {objective.name} (crash, timeout, invalid)")
    _points(axes, [(i, edge) for i in stopped], marker="s", size=40, face=STOPPED_COLOUR, edge="white",
            label="stopped early (could not win)")
    curve = trace.best_so_far()
    xs = [i for i, v in enumerate(curve) if v is not None]
    axes.step(xs, [curve[i] for i in xs], where="post", color="black", linewidth=1.8, label="best so far")
    if baseline is not None:
        axes.axhline(baseline, color=GREY, linestyle="--", linewidth=1, label=f"baseline {baseline:.4f}")
        if noise_floor:
            axes.axhspan(baseline - noise_floor, baseline + noise_floor, color=NOISE_COLOUR, alpha=0.35, linewidth=0,
                         label=f"baseline ± noise floor ({noise_floor:.4f})")
    _generation_lines(axes, trace)
    _mechanism_rug(axes, trace, window.better_edge)
    axes.set_ylim(*window.limits())
    axes.set_xlim(-0.8, max(len(experiments) - 0.2, 1))
    axes.set_title(title or f"{objective.name} per experiment")
    axes.set_xlabel("experiment index (0 = baseline)")
    axes.set_ylabel(value_label(objective))
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.grid(True, alpha=0.25)
    figure.legend(*axes.get_legend_handles_labels(), loc="outside right upper", fontsize=8, frameon=False)
    markers = [*shown.items(), *((i, edge) for i, _ in beyond), *((i, edge) for i in failed + stopped)]
    _annotate_kept(figure, axes, trace, shown, markers)  # last: it needs the final limits and layout
    return figure


def _value_range(values: list[float], baseline: float | None, objective: Objective) -> ValueWindow:
    """Everything from the best value to the baseline or the 90th percentile towards the worse side, whichever
    is further; a diverged run (val_bpb 8 where the rest sit near 3) must not squash the picture. Computed for
    "lower is better" on sign-flipped values, then flipped back for a maximised metric."""
    sign = 1.0 if objective.minimize else -1.0
    if not values:
        return ValueWindow(0.0, 1.0, objective.minimize)
    flipped = [sign * v for v in values]
    best = min(flipped)
    top = max(float(np.percentile(flipped, 90)), sign * baseline if baseline is not None else best)
    span = max(top - best, MIN_VALUE_SPAN)  # a flat run must not be drawn at a magnified float-noise scale
    low, high = best - span * 0.18, top + span * 0.08
    return ValueWindow(low, high, True) if objective.minimize else ValueWindow(-high, -low, False)


def _points(axes: Axes, points: list[tuple[int, float]], *, marker: str, size: float, face: str, edge: str,
            label: str) -> None:
    if points:
        xs, ys = zip(*points, strict=True)
        axes.scatter(xs, ys, marker=marker, s=size, facecolors=face, edgecolors=edge, linewidths=1.1, zorder=3,
                     label=label, clip_on=False)


def _generation_lines(axes: Axes, trace: Trace) -> None:
    """A dotted line where each generation starts, named on a top axis (every k-th name when there are many)."""
    starts = [(e.index, e.generation) for previous, e in zip(trace.experiments[1:], trace.experiments[2:], strict=False)
              if e.generation != previous.generation]
    if not starts:
        return
    for index, _ in starts:
        axes.axvline(index - 0.5, color=GREY, linestyle=":", linewidth=0.9)
    every = -(-len(starts) // MAX_GENERATION_LABELS)  # ceiling division
    named = starts[::every]
    top = axes.secondary_xaxis("top")
    top.set_xticks([index - 0.5 for index, _ in named], [f"g{generation}" for _, generation in named])
    top.tick_params(axis="x", labelsize=8, colors=GREY, length=3)


def _mechanism_rug(axes: Axes, trace: Trace, edge: float) -> None:
    """A tick on the better edge (away from the failure markers) at each experiment where some mechanism changed a
    decision."""
    influenced = [e.index for e in trace.experiments if any(a.changed for a in e.mechanisms)]
    if influenced:
        axes.scatter(influenced, [edge] * len(influenced), marker="|", s=160, color=MECHANISM_COLOUR,
                     linewidths=2, zorder=2, clip_on=False, label="a mechanism changed a decision")


def _annotate_kept(figure: Figure, axes: Axes, trace: Trace, shown: dict[int, float],
                   markers: list[tuple[int, float]]) -> None:
    """Label kept changes without overlaps: the biggest steps down first, each label at the first free spot
    around its point (free of other labels, of the points, and inside the axes); a label with no free spot is
    left out (the page's table lists every kept change). Needs the final layout, so the figure is laid out
    first and then frozen."""
    objective = trace.objective
    experiments = trace.experiments
    kept = [e for e in experiments[1:] if e.kept and e.index in shown and e.changes]
    if not kept:
        return
    figure.draw_without_rendering()
    figure.set_layout_engine("none")  # positions measured now must still hold when the figure is saved
    renderer = figure.canvas.get_renderer()
    frame = axes.get_window_extent(renderer).frozen()
    to_pixels = axes.transData.transform
    taken = [Bbox.from_bounds(x - 5, y - 5, 10, 10) for x, y in to_pixels(markers)]
    placed = 0
    for experiment in sorted(kept, key=lambda e: _step(experiments, e, objective)):
        if placed >= MAX_ANNOTATIONS:
            break
        point = (experiment.index, shown[experiment.index])
        for dx, dy in LABEL_OFFSETS:
            label = axes.annotate(change_label(experiment.changes), point, xytext=(dx, dy), textcoords="offset points",
                                  ha="left" if dx > 0 else "right", va="center", fontsize=7.5, color="#1a1a1a",
                                  parse_math=False, annotation_clip=False,
                                  arrowprops={"arrowstyle": "-", "color": GREY, "linewidth": 0.6, "shrinkB": 4},
                                  bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none",
                                        "alpha": 0.85})
            # The text alone: an Annotation's own extent includes its leader line, which touches its point.
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer).expanded(1.04, 1.15)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                placed += 1
                break
            label.remove()


def _step(experiments: list[Experiment], experiment: Experiment, objective: Objective) -> float:
    """Δ of this experiment against the best before it, sign-corrected (the biggest improvement sorts first)."""
    best_before = objective.best(e.measured for e in experiments[: experiment.index])
    measured = experiment.measured
    if best_before is None or measured is None:
        return 0.0
    return objective.delta(best_before, measured)


def change_label(changes: Mapping[str, object]) -> str:
    """`NAME=value, ...` shortened to fit a label; JSON lists are shown as the script's tuples."""
    text = ", ".join(f"{name}={_literal(value)}" for name, value in changes.items())
    return text if len(text) <= ANNOTATION_CHARS else text[: ANNOTATION_CHARS - 1] + "…"


def _literal(value: object) -> str:
    return "(" + ", ".join(str(v) for v in value) + ")" if isinstance(value, list) else str(value)
