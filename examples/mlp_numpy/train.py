"""Fit a bumpy 2-D surface with a small multilayer perceptron written in numpy (minibatch SGD with momentum).

The data (1,000 noisy samples of a fixed function of two inputs: a product of sines, a ridge and a Gaussian bump) are
drawn once from a fixed seed, so every run learns the same task; SEED only drives the initialisation and the
minibatch order. The metric is `val_loss`, the mean squared error on 400 held-out samples, lower is better (the noise
alone gives about 0.01). It is written to `metrics.json` in the working directory (with the training loss). A
diverging training makes the run fail.

    bilevel run --workload examples/mlp_numpy/train.py --metric val_loss --fixed SEED,STEPS --levels 1
"""

import json

import numpy as np

# --- hyperparameters ---
HIDDEN = 16                 # int [4, 64] log: units per hidden layer
LAYERS = 1                  # int [1, 3]: hidden layers
ACTIVATION = "relu"         # choice [relu, tanh, sin]: hidden activation
LEARNING_RATE = 0.01        # float [1e-4, 0.5] log: SGD step size
MOMENTUM = 0.0              # float [0.0, 0.99]: heavy-ball momentum
WEIGHT_DECAY = 1e-3         # float [1e-6, 0.1] log: L2 penalty on the weight matrices
INIT_SCALE = 1.0            # float [0.1, 4.0]: initial weights are this times the 1/sqrt(fan-in) scale
BATCH_SIZE = 32             # int [4, 128] log: samples per gradient step
COSINE_DECAY = False        # bool: decay the step size to 0 along a cosine over the run
STEPS = 1000                # int [100, 20000]: gradient steps (the budget)
SEED = 0                    # int [0, 1000]: initialisation and minibatch seed (the data do not depend on it)
# --- end hyperparameters ---

DATA_SEED = 20241105  # bilevel: fixed (the data: the same samples in every run)
TRAIN, VAL = 600, 400  # bilevel: fixed (the split)
NOISE_SD = 0.1  # bilevel: fixed (the data)


def dataset() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    x = rng.uniform(-1.0, 1.0, size=(TRAIN + VAL, 2))  # bilevel: fixed (the data)
    clean = (np.sin(3.0 * x[:, 0]) * np.cos(2.0 * x[:, 1]) + 0.5 * np.tanh(4.0 * (x[:, 0] + x[:, 1]))  # bilevel: fixed
             + 0.8 * np.exp(-12.0 * ((x[:, 0] - 0.4) ** 2 + (x[:, 1] + 0.3) ** 2)))  # bilevel: fixed (the data)
    return x, (clean + rng.normal(0.0, NOISE_SD, size=clean.shape))[:, None]  # bilevel: fixed (the data)


def activate(pre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The activation and its derivative at `pre`."""
    if ACTIVATION == "tanh":
        out = np.tanh(pre)
        return out, 1.0 - out**2
    if ACTIVATION == "sin":
        return np.sin(pre), np.cos(pre)
    return np.maximum(pre, 0.0), (pre > 0.0).astype(pre.dtype)


def main() -> None:
    x, y = dataset()
    x_train, y_train, x_val, y_val = x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]
    rng = np.random.default_rng(SEED)
    sizes = [2] + [HIDDEN] * LAYERS + [1]
    weights = [rng.normal(0.0, INIT_SCALE / np.sqrt(fan_in), size=(fan_in, fan_out))
               for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(fan_out) for fan_out in sizes[1:]]
    velocity = [np.zeros_like(p) for p in weights + biases]
    batch = min(BATCH_SIZE, TRAIN)

    def forward(inputs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        outs, slopes = [inputs], []
        for w, b in zip(weights[:-1], biases[:-1]):
            out, slope = activate(outs[-1] @ w + b)
            outs.append(out)
            slopes.append(slope)
        return outs[-1] @ weights[-1] + biases[-1], outs, slopes

    for step in range(STEPS):
        rate = LEARNING_RATE * (0.5 * (1.0 + np.cos(np.pi * step / STEPS)) if COSINE_DECAY else 1.0)
        rows = rng.choice(TRAIN, size=batch, replace=False)
        prediction, outs, slopes = forward(x_train[rows])
        back = 2.0 * (prediction - y_train[rows]) / batch
        grads_w, grads_b = [], []
        for layer in range(len(weights) - 1, -1, -1):
            grads_w.insert(0, outs[layer].T @ back + WEIGHT_DECAY * weights[layer])
            grads_b.insert(0, back.sum(axis=0))
            if layer > 0:
                back = (back @ weights[layer].T) * slopes[layer - 1]
        for k, (param, grad) in enumerate(zip(weights + biases, grads_w + grads_b)):
            velocity[k] = MOMENTUM * velocity[k] - rate * grad
            param += velocity[k]
        if not np.isfinite(weights[-1]).all():
            raise FloatingPointError(f"diverged at step {step}: lower LEARNING_RATE, MOMENTUM or INIT_SCALE")
    train_loss = float(np.mean((forward(x_train)[0] - y_train) ** 2))
    val_loss = float(np.mean((forward(x_val)[0] - y_val) ** 2))
    if not np.isfinite(val_loss):
        raise FloatingPointError("the validation loss is not finite: lower LEARNING_RATE, MOMENTUM or INIT_SCALE")
    metrics = {"val_loss": val_loss, "train_loss": train_loss, "steps": STEPS}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"val_loss {val_loss:.6f} (train_loss {train_loss:.6f}, {STEPS} steps)")


if __name__ == "__main__":
    main()
