"""Fit a fixed synthetic regression task with random-Fourier-feature kernel ridge regression in numpy (no network).

The data (4,000 training and 2,000 validation rows of 8 features on very different scales: a wide one, a narrow one,
a heavy-tailed one, and three that do not matter, one of them wide; a positive, right-skewed target with
multiplicative noise, and 3% of the training targets recorded ten times too large) are drawn once from a fixed seed,
so every run learns the same task. The inputs are scaled by statistics of the training rows; the target is
transformed and clipped. Each of MODELS ridge models maps the inputs to FEATURES random Fourier features cos(x w /
BANDWIDTH + b) (the frequencies w drawn from the kernel's spectral density, optionally orthogonalised), fits a sample
of the training rows in closed form, and the models' predictions are averaged back on the target's scale. SEED drives
the frequencies, the phases and the rows sampled. The metric is `val_rmse`, the root mean squared error on the
validation rows, lower is better (predicting the training mean gives about 2.26). It is written to `metrics.json` in
the working directory (with the training error). A singular system or predictions that are not finite make the run
fail.

    bilevel run --workload examples/rff_ridge/train.py --metric val_rmse --fixed SEED,MODELS --levels 1
"""

import json
import re

import numpy as np

# --- hyperparameters ---
FEATURES = 256              # int [16, 1024] log: random Fourier features per model
BANDWIDTH = 1.0             # float [0.01, 100.0] log: the kernel's length scale, in units of the scaled inputs
RIDGE = 1e-4                # float [1e-8, 10.0] log: L2 penalty on the feature weights, per training row
KERNEL = "gaussian"         # choice [gaussian, laplace, matern]: the shift-invariant kernel approximated (its frequencies: normal, Cauchy, Student t with 3 degrees of freedom)
ORTHOGONAL = False          # bool: orthogonalise the frequency directions in blocks of the input dimension (keeping their lengths)
SCALING = "minmax"          # choice [none, standard, robust, minmax]: input scaling (training statistics): none, mean and SD, median and IQR, or to [0, 1]
TARGET = "raw"              # choice [raw, standard, log]: the target as fitted: as it is, centred and scaled, or its logarithm centred
TARGET_CLIP = 100.0         # float [0.5, 100.0] log: training targets (as fitted) are clipped to the median +- this many robust SDs
LINEAR = False              # bool: add the scaled inputs and a constant as extra (penalised) columns
ROW_SHARE = 1.0             # float [0.1, 1.0]: share of the training rows each model fits (drawn without replacement)
MODELS = 8                  # int [1, 32]: ridge models averaged, each with its own features and rows (the budget)
SEED = 0                    # int [0, 1000]: the features' and row samples' seed (the data do not depend on it)
# --- end hyperparameters ---

DATA_SEED = 20250418  # bilevel: fixed (the data: the same rows in every run)
TRAIN, VAL = 4000, 2000  # bilevel: fixed (the split)
INPUTS = 8  # bilevel: fixed (the data)
CONTAMINATED = 0.03  # bilevel: fixed (the data: the share of training targets recorded ten times too large)


def check_block() -> None:
    """Exit with one line when a block value lies outside the range its comment declares (or is not a choice)."""
    with open(__file__, encoding="utf-8") as handle:
        block = handle.read().split("# --- hyperparameters ---")[1].split("# --- end hyperparameters ---")[0]
    for name, kind, bounds in re.findall(r"^(\w+) *=.*?# (int|float|choice|bool)\b(?: \[([^\]]*)\])?", block, re.M):
        value = globals()[name]
        if kind == "choice":
            ok = value in [choice.strip() for choice in bounds.split(",")]
        elif kind == "bool":
            ok = isinstance(value, bool)
        else:
            low, high = (float(bound) for bound in bounds.split(","))
            number = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
            ok = number and not isinstance(value, bool) and low <= value <= high
        if not ok:
            allowed = f" in [{bounds}]" if bounds else ""
            raise SystemExit(f"train.py: {name} = {value!r} is not a valid {kind}{allowed}")


def dataset() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    n = TRAIN + VAL
    x = rng.normal(size=(n, INPUTS))  # bilevel: fixed (the data)
    x[:, 1] *= 20.0  # bilevel: fixed (the data: a wide input with a gentle trend)
    x[:, 2] = rng.uniform(0.0, 0.2, size=n)  # bilevel: fixed (the data: a narrow input with a fast oscillation)
    x[:, 3] *= 50.0  # bilevel: fixed (the data: a wide input that does not matter)
    x[:, 5] = rng.lognormal(0.0, 1.0, size=n)  # bilevel: fixed (the data: a heavy-tailed input)
    clean = (1.2 * np.sin(1.5 * x[:, 0]) + 0.04 * x[:, 1] + 0.8 * np.cos(30.0 * x[:, 2])  # bilevel: fixed (the data)
             + 0.6 * x[:, 0] * x[:, 4] + 0.5 * np.log(x[:, 5]))  # bilevel: fixed (the data)
    y = 2.0 * np.exp(0.5 * clean + rng.normal(0.0, 0.15, size=n))  # bilevel: fixed (the data: multiplicative noise)
    y[:TRAIN][rng.random(TRAIN) < CONTAMINATED] *= 10.0  # bilevel: fixed (the data: gross recording errors)
    return x, y


def scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, spread) per input from the training rows: the inputs are used as (x - centre) / spread."""
    if SCALING == "standard":
        return x.mean(axis=0), x.std(axis=0)
    if SCALING == "robust":
        low, median, high = np.quantile(x, [0.25, 0.5, 0.75], axis=0)  # bilevel: fixed (the quartiles)
        return median, high - low
    if SCALING == "minmax":
        return x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    return np.zeros(x.shape[1]), np.ones(x.shape[1])


def frequencies(rng: np.random.Generator) -> np.ndarray:
    """(INPUTS, FEATURES) frequencies of the kernel's spectral density at unit length scale."""
    w = rng.normal(size=(INPUTS, FEATURES))
    if KERNEL == "laplace":  # a product of Laplace kernels: a Cauchy density per input
        w = rng.standard_cauchy(size=(INPUTS, FEATURES))
    elif KERNEL == "matern":  # a Matern-like kernel: a multivariate Student t density, 3 degrees of freedom
        w /= np.sqrt(rng.chisquare(3.0, size=FEATURES) / 3.0)
    if ORTHOGONAL:
        lengths = np.linalg.norm(w, axis=0)
        for first in range(0, FEATURES, INPUTS):
            block = w[:, first:first + INPUTS]
            q, _ = np.linalg.qr(rng.normal(size=(INPUTS, INPUTS)))
            w[:, first:first + INPUTS] = q[:, :block.shape[1]] * lengths[first:first + INPUTS]
    return w


def main() -> None:
    check_block()
    x, y = dataset()
    x_train, y_train, x_val, y_val = x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]
    centre, spread = scaler(x_train)
    x_train, x_val = (x_train - centre) / spread, (x_val - centre) / spread
    if TARGET == "log":
        shift, unit = float(np.log(y_train).mean()), 1.0
        t = np.log(y_train) - shift
    else:
        shift, unit = (float(y_train.mean()), float(y_train.std())) if TARGET == "standard" else (0.0, 1.0)
        t = (y_train - shift) / unit
    median = float(np.median(t))
    robust_sd = 1.4826 * float(np.median(np.abs(t - median)))  # bilevel: fixed (the MAD's normal consistency)
    t = np.clip(t, median - TARGET_CLIP * robust_sd, median + TARGET_CLIP * robust_sd)
    rng = np.random.default_rng(SEED)
    rows = round(ROW_SHARE * TRAIN)
    fitted_train, fitted_val = np.zeros(TRAIN), np.zeros(VAL)

    def columns(inputs: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        z = np.sqrt(2.0 / FEATURES) * np.cos(inputs @ w / BANDWIDTH + b)
        return np.hstack([z, inputs, np.ones((len(inputs), 1))]) if LINEAR else z

    for _ in range(MODELS):
        w, b = frequencies(rng), rng.uniform(0.0, 2.0 * np.pi, size=FEATURES)
        sample = rng.choice(TRAIN, size=rows, replace=False)
        z_train = columns(x_train, w, b)
        z = z_train[sample]
        gram = z.T @ z + RIDGE * rows * np.eye(z.shape[1])
        try:
            weights = np.linalg.solve(gram, z.T @ t[sample])
        except np.linalg.LinAlgError:
            raise SystemExit("train.py: the ridge system is singular: raise RIDGE") from None
        fitted_train += z_train @ weights / MODELS
        fitted_val += columns(x_val, w, b) @ weights / MODELS

    with np.errstate(over="ignore"):
        if TARGET == "log":
            predict_train, predict_val = np.exp(fitted_train + shift), np.exp(fitted_val + shift)
        else:
            predict_train, predict_val = fitted_train * unit + shift, fitted_val * unit + shift
    if not (np.isfinite(predict_val).all() and np.isfinite(predict_train).all()):
        raise SystemExit("train.py: the predictions are not finite: raise RIDGE or BANDWIDTH, or lower TARGET_CLIP")
    val_rmse = float(np.sqrt(np.mean((predict_val - y_val) ** 2)))
    train_rmse = float(np.sqrt(np.mean((predict_train - y_train) ** 2)))
    metrics = {"val_rmse": val_rmse, "train_rmse": train_rmse, "columns": FEATURES + (INPUTS + 1) * LINEAR,
               "rows_per_model": rows, "models": MODELS}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"val_rmse {val_rmse:.6f} (train_rmse {train_rmse:.6f}, {metrics['columns']} columns, "
          f"{metrics['rows_per_model']} rows per model, {MODELS} models)")


if __name__ == "__main__":
    main()
