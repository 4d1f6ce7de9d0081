"""Classify two interleaved spirals with a small numpy MLP (one hidden layer, full-batch gradient descent).

The metric is `val_accuracy`, printed after a `---` line: higher is better. Run it with bilevel:

    bilevel run --workload examples/classify/train.py --metric val_accuracy --goal maximize --fixed SEED \
        --budget-param EPOCHS --levels 1
"""

import numpy as np

# --- hyperparameters ---
HIDDEN = 8                  # int [2, 128] log: hidden units
LEARNING_RATE = 0.05        # float [1e-3, 3.0] log: gradient step size
L2 = 0.0001                 # float [0.0, 0.01]: weight decay
ACTIVATION = "tanh"         # choice [tanh, relu]: hidden activation
INIT_SCALE = 1.0            # float [0.1, 3.0]: scale of the initial weights
EPOCHS = 300                # int [10, 3000]: full-batch steps (the budget)
SEED = 0                    # int [0, 1000]: data and initialisation seed
# constraint: HIDDEN >= 2
# --- end hyperparameters ---


def spirals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = rng.uniform(0.25, 1.0, size=n) * 3 * np.pi
    label = rng.integers(0, 2, size=n)
    angle = t + np.pi * label
    points = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (3 * np.pi)
    return points + rng.normal(0.0, 0.03, size=points.shape), label


def main() -> None:
    rng = np.random.default_rng(SEED)
    x, y = spirals(rng, 600)
    train, val = slice(0, 450), slice(450, 600)
    w1 = rng.normal(0.0, INIT_SCALE / np.sqrt(2), size=(2, HIDDEN))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0.0, INIT_SCALE / np.sqrt(HIDDEN), size=HIDDEN)
    b2 = 0.0

    def forward(points: np.ndarray):
        pre = points @ w1 + b1
        hidden = np.tanh(pre) if ACTIVATION == "tanh" else np.maximum(pre, 0.0)
        return pre, hidden, 1.0 / (1.0 + np.exp(-(hidden @ w2 + b2)))

    for _ in range(EPOCHS):
        pre, hidden, prob = forward(x[train])
        error = (prob - y[train]) / y[train].size
        grad_w2 = hidden.T @ error + L2 * w2
        back = np.outer(error, w2) * ((1 - hidden**2) if ACTIVATION == "tanh" else (pre > 0))
        w1 -= LEARNING_RATE * (x[train].T @ back + L2 * w1)
        b1 -= LEARNING_RATE * back.sum(axis=0)
        w2 -= LEARNING_RATE * grad_w2
        b2 -= LEARNING_RATE * error.sum()
    _, _, prob = forward(x[val])
    accuracy = float(np.mean((prob > 0.5) == y[val]))
    print("---")
    print(f"val_accuracy: {accuracy:.4f}")
    print(f"epochs: {EPOCHS}")


if __name__ == "__main__":
    main()
