"""Fit a Gaussian mixture by expectation-maximisation in numpy to a fixed synthetic data set, scored on held-out rows.

The data (2,000 training and 2,000 validation rows of 4 features) are drawn once from a fixed seed, so every run fits
the same task: eight elongated, tilted clusters of different sizes and weights, one feature stretched thirty times and
another shifted far from zero, and 4% of the rows scattered uniformly over a wide box. SEED drives the initialisation
only. The inputs are scaled by statistics of the training rows. Each restart places the components' means (training
rows drawn at random, k-means++ seeding, or k-means++ followed by Lloyd's k-means), assigns every row to its nearest
mean for a first M-step, and runs EM steps, optionally from a temperature above 1 that tempers the responsibilities
and falls to 1 over the first half of its steps; a small constant is added to every covariance's diagonal. Beside the
fitted components there may be a fixed broad one (the training rows' mean and covariance, three times wider) with a
fixed weight, for the scattered rows. The restart with the highest training likelihood is kept. The budget is the
number of EM steps in all. The metric is `val_nll`, the mean negative log-likelihood of the validation rows in the
original units, lower is better (one Gaussian with a full covariance gives about 13.8). It is written to
`metrics.json` in the working directory (with the training figure). Likelihoods that are not finite make the run fail.

    bilevel run --workload examples/gmm_numpy/train.py --metric val_nll --fixed SEED,STEPS --levels 1
"""

import json
import math
import re

import numpy as np

# --- hyperparameters ---
COMPONENTS = 3              # int [1, 24] log: Gaussian components fitted
COVARIANCE = "spherical"    # choice [spherical, diag, full]: each component's covariance: one variance, one per feature, or a full matrix
INIT = "random"             # choice [random, kmeans++, kmeans]: the first means: training rows at random, k-means++ seeding, or k-means++ then Lloyd's k-means
RESTARTS = 1                # int [1, 10]: initialisations, each with its share of the EM steps (the highest training likelihood is kept)
REG_COVAR = 1e-6            # float [1e-6, 1.0] log: added to every covariance's diagonal, in units of the scaled inputs
SCALING = "none"            # choice [none, standard, robust]: input scaling (training statistics): none, mean and SD, or median and IQR
BACKGROUND = 0.0            # float [0.0, 0.2]: the fixed weight of a broad component for scattered rows (0: none)
ANNEAL = 1.0                # float [1.0, 10.0] log: the responsibilities' first temperature, falling to 1 over half the steps (1: plain EM)
STEPS = 200                 # int [20, 500]: EM steps in all (the budget)
SEED = 0                    # int [0, 1000]: the initialisation's seed (the data do not depend on it)
# --- end hyperparameters ---

DATA_SEED = 20250902  # bilevel: fixed (the data: the same rows in every run)
TRAIN, VAL = 2000, 2000  # bilevel: fixed (the split)
FEATURES, CLUSTERS = 4, 8  # bilevel: fixed (the data)
SCATTERED = 0.04  # bilevel: fixed (the data: the share of rows spread over a wide box)
LLOYD_STEPS = 20  # bilevel: fixed (the k-means steps of INIT = "kmeans", not counted in the budget)


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


def dataset() -> np.ndarray:
    """(TRAIN + VAL, FEATURES) rows: the training rows first."""
    rng = np.random.default_rng(DATA_SEED)
    n = TRAIN + VAL
    centres = rng.normal(0.0, 3.0, size=(CLUSTERS, FEATURES))  # bilevel: fixed (the data)
    weights = rng.dirichlet(np.full(CLUSTERS, 2.0))  # bilevel: fixed (the data: unequal cluster sizes)
    scales = rng.uniform(0.15, 1.5, size=(CLUSTERS, FEATURES))  # bilevel: fixed (the data: elongated clusters)
    rotations = np.linalg.qr(rng.normal(size=(CLUSTERS, FEATURES, FEATURES)))[0]  # bilevel: fixed (the data: tilted)
    labels = rng.choice(CLUSTERS, size=n, p=weights)
    x = centres[labels] + np.einsum("nd,ned->ne", rng.normal(size=(n, FEATURES)) * scales[labels], rotations[labels])
    scattered = rng.random(n) < SCATTERED
    x[scattered] = rng.uniform(-12.0, 12.0, size=(int(scattered.sum()), FEATURES))  # bilevel: fixed (the data)
    x[:, 1] *= 30.0  # bilevel: fixed (the data: a stretched feature)
    x[:, 3] += 500.0  # bilevel: fixed (the data: a shifted feature)
    return x


def gaussian_logpdf(x: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """(rows, components) log densities; covariances (components, FEATURES, FEATURES)."""
    try:
        chol = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        raise SystemExit("train.py: a covariance is not positive definite: raise REG_COVAR") from None
    eye = np.broadcast_to(np.eye(x.shape[1]), covariances.shape)
    inverse = np.linalg.solve(chol, eye)  # the inverse Cholesky factors
    diff = x[None, :, :] - means[:, None, :]
    y = np.einsum("kde,kne->knd", inverse, diff)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # bilevel: fixed (the density)
    quadratic = (y ** 2).sum(axis=2) + log_det[:, None] + x.shape[1] * math.log(2.0 * math.pi)  # bilevel: fixed
    return -0.5 * quadratic.T  # bilevel: fixed (the density)


def logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=1, keepdims=True)))[:, 0]


def main() -> None:
    check_block()
    data = dataset()
    train, val = data[:TRAIN], data[TRAIN:]
    if SCALING == "standard":
        centre, spread = train.mean(axis=0), train.std(axis=0)
    elif SCALING == "robust":
        low, centre, high = np.quantile(train, [0.25, 0.5, 0.75], axis=0)  # bilevel: fixed (the quartiles)
        spread = high - low
    else:
        centre, spread = np.zeros(FEATURES), np.ones(FEATURES)
    x, x_val = (train - centre) / spread, (val - centre) / spread
    jacobian = float(np.log(spread).sum())  # the scaled densities back in the original units
    eye = np.eye(FEATURES)
    broad_mean, broad_cov = x.mean(axis=0), 9.0 * np.cov(x.T) + REG_COVAR * eye  # bilevel: fixed (3 times wider)
    rng = np.random.default_rng(SEED)
    k = COMPONENTS

    def m_step(resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights (summing to 1 - BACKGROUND), means and covariances from (rows, k) responsibilities."""
        counts = resp.sum(axis=0) + 1e-10  # bilevel: fixed (an empty component keeps finite values)
        means = resp.T @ x / counts[:, None]
        diff = x[None, :, :] - means[:, None, :]
        if COVARIANCE == "full":
            covariances = np.einsum("nk,knd,kne->kde", resp, diff, diff) / counts[:, None, None]
        else:
            variances = np.einsum("nk,knd->kd", resp, diff ** 2) / counts[:, None]
            if COVARIANCE == "spherical":
                variances = np.repeat(variances.mean(axis=1, keepdims=True), FEATURES, axis=1)
            covariances = variances[:, :, None] * eye
        return (1.0 - BACKGROUND) * counts / counts.sum(), means, covariances + REG_COVAR * eye

    def log_joint(rows: np.ndarray, params: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """(rows, k or k + 1) log weight plus log density, the broad component last."""
        weights, means, covariances = params
        joint = np.log(weights + 1e-300) + gaussian_logpdf(rows, means, covariances)
        if BACKGROUND > 0:
            broad = math.log(BACKGROUND) + gaussian_logpdf(rows, broad_mean[None], broad_cov[None])
            joint = np.hstack([joint, broad])
        return joint

    def first_means() -> np.ndarray:
        means = x[rng.choice(TRAIN, size=k, replace=False)]
        if INIT == "random":
            return means
        means = x[[int(rng.integers(TRAIN))]]
        for _ in range(k - 1):  # k-means++: each next mean a row drawn in proportion to its squared distance
            d2 = ((x[:, None, :] - means[None]) ** 2).sum(axis=2).min(axis=1)
            means = np.vstack([means, x[rng.choice(TRAIN, p=d2 / d2.sum())]])
        for _ in range(LLOYD_STEPS if INIT == "kmeans" else 0):
            nearest = ((x[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
            for j in range(k):
                if (nearest == j).any():
                    means[j] = x[nearest == j].mean(axis=0)
        return means

    best, best_train, steps = None, -math.inf, 0
    for restart in range(RESTARTS):
        share = STEPS * (restart + 1) // RESTARTS  # the EM steps spent by the end of this restart
        own = share - steps
        means = first_means()
        nearest = ((x[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
        params = m_step(np.eye(k)[nearest])
        for step in range(own):
            temperature = ANNEAL ** max(0.0, 1.0 - 2.0 * step / own)  # bilevel: fixed (1 after half the steps)
            joint = log_joint(x, params) / temperature
            resp = np.exp(joint - logsumexp(joint)[:, None])[:, :k]
            params = m_step(resp)
            steps += 1
        train_ll = float(logsumexp(log_joint(x, params)).mean())
        if not math.isfinite(train_ll):
            raise SystemExit("train.py: the likelihood is not finite: raise REG_COVAR")
        if train_ll > best_train:
            best, best_train = params, train_ll
    if best is None:
        raise SystemExit("train.py: no restart gave a finite likelihood: raise REG_COVAR")

    val_nll = float(-logsumexp(log_joint(x_val, best)).mean() + jacobian)
    train_nll = -best_train + jacobian
    if not math.isfinite(val_nll):
        raise SystemExit("train.py: the validation likelihood is not finite: raise REG_COVAR")
    metrics = {"val_nll": val_nll, "train_nll": train_nll, "components": k, "steps": steps,
               "largest_weight": float(best[0].max()), "smallest_weight": float(best[0].min())}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"val_nll {val_nll:.6f} (train_nll {train_nll:.6f}, {k} components, {steps} EM steps, weights "
          f"{metrics['smallest_weight']:.4f} to {metrics['largest_weight']:.4f})")


if __name__ == "__main__":
    main()
