"""Fit a noisy sine curve with a polynomial, by gradient descent (numpy only, about a second).

The metric is the validation mean squared error, `val_mse`, printed after a `---` line: lower is better.
Run it with bilevel:

    bilevel run --workload examples/fit_curve/train.py --metric val_mse --fixed SEED,STEPS --levels 1
"""

import numpy as np

# --- hyperparameters ---
DEGREE = 3                  # int [1, 12]: degree of the polynomial
LEARNING_RATE = 0.05        # float [1e-4, 1.0] log: gradient step size
MOMENTUM = 0.0              # float [0.0, 0.99]: heavy-ball momentum
L2 = 0.001                  # float [0.0, 0.1]: weight decay
FEATURE_SCALE = 1.0         # float [0.1, 4.0]: inputs are scaled by this before the powers are taken
STEPS = 400                 # int [10, 5000]: gradient steps (the budget)
SEED = 0                    # int [0, 1000]: data and initialisation seed
# --- end hyperparameters ---


def main() -> None:
    rng = np.random.default_rng(SEED)
    x = rng.uniform(-1.0, 1.0, size=400)  # bilevel: fixed (the data)
    y = np.sin(3.0 * x) + rng.normal(0.0, 0.1, size=x.size)  # bilevel: fixed (the data)
    train, val = slice(0, 300), slice(300, 400)  # bilevel: fixed (the data and the split)
    powers = np.stack([(FEATURE_SCALE * x) ** k for k in range(DEGREE + 1)], axis=1)
    weights = rng.normal(0.0, 0.01, size=DEGREE + 1)
    velocity = np.zeros_like(weights)
    for step in range(STEPS):
        residual = powers[train] @ weights - y[train]
        gradient = powers[train].T @ residual / residual.size + L2 * weights
        velocity = MOMENTUM * velocity - LEARNING_RATE * gradient
        weights = weights + velocity
        if not np.all(np.isfinite(weights)):
            raise FloatingPointError(f"diverged at step {step}: lower LEARNING_RATE or FEATURE_SCALE")
    val_mse = float(np.mean((powers[val] @ weights - y[val]) ** 2))
    train_mse = float(np.mean((powers[train] @ weights - y[train]) ** 2))
    print("---")
    print(f"val_mse: {val_mse:.6f}")
    print(f"train_mse: {train_mse:.6f}")
    print(f"steps: {STEPS}")


if __name__ == "__main__":
    main()
