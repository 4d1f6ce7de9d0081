"""How a report names the objective and the noise floor: labels, the definition of Δ and the reading notes, from the
Objective alone. One home, so that no page or plot says val_bpb or "lower is better" for a metric that is neither."""

from __future__ import annotations

from search.objective import Objective

SIGN_CORRECTED = "sign-corrected: negative is better"
NOT_MEASURED = "not measured"
NOISE_FLOOR_MEANING = "seed-to-seed standard deviation of the baseline"


def value_label(objective: Objective) -> str:
    """`val_bpb (lower is better)`: a raw axis or column of measured values."""
    return f"{objective.name} ({objective.direction})"


def best_so_far_label(objective: Objective) -> str:
    """`best val_bpb so far (lower is better)`."""
    return f"best {objective.name} so far ({objective.direction})"


def delta_name(objective: Objective) -> str:
    """`Δ val_bpb`: a short column header."""
    return f"Δ {objective.name}"


def delta_label(objective: Objective) -> str:
    """`Δ accuracy (sign-corrected: negative is better)`: a Δ axis."""
    return f"Δ {objective.name} ({SIGN_CORRECTED})"


def delta_formula(objective: Objective, value: str = "best") -> str:
    """How Δ is computed from the raw values, so that negative is an improvement: `best − baseline` or, for a
    maximised metric, `baseline − best` (`value` names what is compared with the baseline)."""
    return f"{value} − baseline" if objective.minimize else f"baseline − {value}"


def reading_note(objective: Objective) -> str:
    """What the numbers on a page mean for this objective's goal."""
    if objective.minimize:
        return (f"The objective is to {objective.describe()}. Raw values are shown as measured; "
                f"Δ = {delta_formula(objective)}, so a negative Δ is an improvement.")
    return (f"The objective is to {objective.describe()}. Raw values are shown as measured: on the raw axes higher "
            f"is up and is better. Every Δ is sign-corrected, Δ = {delta_formula(objective)}, so that a negative Δ "
            f"is an improvement, as for a minimised metric: on the Δ axes, down is better.")


def noise_floor_text(noise_floor: float | None, digits: int = 4) -> str:
    """`±0.0500`, or `not measured`."""
    return NOT_MEASURED if noise_floor is None else f"±{noise_floor:.{digits}f}"


def delta_against_noise(delta: float | None, noise_floor: float | None) -> str:
    """How large |Δ| is in noise floors (`|Δ| = 6.1× the noise floor`); empty when either is unknown."""
    if delta is None or noise_floor is None:
        return ""
    if noise_floor == 0:
        return "the noise floor is 0: every repeat of the baseline measured the same value"
    return f"|Δ| = {abs(delta) / noise_floor:.1f}× the noise floor"
