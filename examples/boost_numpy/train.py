"""Classify a fixed synthetic tabular dataset with gradient-boosted decision trees written in numpy (histogram splits).

The data (3,000 training and 2,000 validation rows of 10 features, 4 of them pure noise; a binary label drawn from a
logistic model with a threshold, interactions and smooth terms; the Bayes rule's log loss is about 0.49) are drawn
once from a fixed seed, so every run learns the same task. Each round fits one regression tree to the gradients of
the log loss, grown to MAX_DEPTH on quantile histograms of the features, and adds its leaf values, shrunk by the
learning rate, to the scores. SEED drives the row and feature subsamples and the rows the histogram edges are
computed from. The metric is `val_logloss`, the mean binary log loss on the validation rows, lower is better (a
constant guess gives about 0.69). It is written to `metrics.json` in the working directory (with the training loss
and the validation error rate).

    bilevel run --workload examples/boost_numpy/train.py --metric val_logloss --fixed SEED,ROUNDS --levels 1
"""

import json

import numpy as np

# --- hyperparameters ---
LEARNING_RATE = 0.5         # float [0.005, 1.0] log: shrinkage of each tree's leaf values
MAX_DEPTH = 1               # int [1, 6]: depth of each tree (1: stumps)
MIN_LEAF = 5                # int [1, 200] log: fewest training rows in a leaf
L2_REG = 0.1                # float [0.001, 100.0] log: L2 penalty on leaf values (lambda)
MIN_GAIN = 0.0              # float [0.0, 5.0]: smallest loss reduction for a split (gamma)
SUBSAMPLE = 0.8             # float [0.1, 1.0]: share of training rows each tree sees (drawn without replacement)
COLSAMPLE = 0.8             # float [0.1, 1.0]: share of features each tree may split on
BINS = 8                    # int [2, 64] log: histogram bins per feature
NEWTON = False              # bool: leaf values by a Newton step (gradients over Hessians) instead of mean gradients
ROUNDS = 300                # int [10, 2000]: boosting rounds, one tree each (the budget)
SEED = 0                    # int [0, 1000]: subsampling seed (the data do not depend on it)
# --- end hyperparameters ---

DATA_SEED = 20250214  # bilevel: fixed (the data: the same rows in every run)
TRAIN, VAL = 3000, 2000  # bilevel: fixed (the split)
FEATURES = 10  # bilevel: fixed (the data)
EDGE_SAMPLE = 256  # bilevel: fixed (training rows the histogram edges are computed from)


def dataset() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    x = rng.normal(size=(TRAIN + VAL, FEATURES))  # bilevel: fixed (the data)
    x[:, 1] += 0.5 * x[:, 0]  # bilevel: fixed (the data: two correlated features)
    logit = (1.5 * np.sin(1.5 * x[:, 0]) + 1.2 * x[:, 1] * x[:, 2] + 1.5 * (x[:, 3] > 0.5)  # bilevel: fixed
             - 0.8 * np.abs(x[:, 4]) + 0.6 * x[:, 5] * (x[:, 2] > 0) + 0.3)  # bilevel: fixed (the data)
    y = (rng.random(TRAIN + VAL) < 1.0 / (1.0 + np.exp(-logit))).astype(float)  # bilevel: fixed (the data)
    return x, y


def log_loss(score: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, score) - y * score))


def predict(tree: dict[str, np.ndarray], binned: np.ndarray) -> np.ndarray:
    """Each row's leaf value: every row steps down one level per pass (a leaf points to itself)."""
    node = np.zeros(len(binned), dtype=np.int64)
    rows = np.arange(len(binned))
    for _ in range(MAX_DEPTH):
        feature = tree["feature"][node]
        left = binned[rows, np.maximum(feature, 0)] <= tree["threshold"][node]
        node = np.where(feature < 0, node, np.where(left, tree["left"][node], tree["right"][node]))
    return tree["value"][node]


def fit_tree(binned: np.ndarray, grad: np.ndarray, hess: np.ndarray, rows: np.ndarray,
             allowed: np.ndarray) -> dict[str, np.ndarray]:
    """One regression tree on `rows`, grown depth-first: each node takes the histogram split of the largest gain."""
    offsets = np.arange(FEATURES) * BINS
    nodes: list[list] = []  # [feature (-1: a leaf), threshold bin, left child, right child, value]

    def grow(members: np.ndarray, depth: int) -> int:
        g, h = grad[members], hess[members]
        g_sum, h_sum = float(g.sum()), float(h.sum())
        node = len(nodes)
        nodes.append([-1, 0, node, node, -g_sum / (h_sum + L2_REG)])
        if depth == MAX_DEPTH or members.size < 2 * MIN_LEAF:
            return node
        cells = (binned[members] + offsets).ravel()
        size = FEATURES * BINS
        left_g, left_h, left_n = (np.cumsum(np.bincount(cells, weights=weights, minlength=size).reshape(FEATURES, BINS),
                                            axis=1)[:, :-1]
                                  for weights in (np.repeat(g, FEATURES), np.repeat(h, FEATURES), None))
        gain = (left_g**2 / (left_h + L2_REG) + (g_sum - left_g) ** 2 / (h_sum - left_h + L2_REG)
                - g_sum**2 / (h_sum + L2_REG)) / 2.0
        gain[(left_n < MIN_LEAF) | (members.size - left_n < MIN_LEAF) | ~allowed[:, None]] = -np.inf
        feature, threshold = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if not gain[feature, threshold] > MIN_GAIN:
            return node
        goes_left = binned[members, feature] <= threshold
        left = grow(members[goes_left], depth + 1)
        nodes[node][:4] = [int(feature), int(threshold), left, grow(members[~goes_left], depth + 1)]
        return node

    grow(rows, 0)
    feature, threshold, left, right, value = zip(*nodes)
    return {"feature": np.array(feature), "threshold": np.array(threshold), "left": np.array(left),
            "right": np.array(right), "value": np.array(value, dtype=float)}


def main() -> None:
    x, y = dataset()
    x_train, y_train, x_val, y_val = x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]
    rng = np.random.default_rng(SEED)
    # Quantile edges per feature from a sample of the training rows; a row's bin is the number of edges below it.
    sample = x_train[rng.choice(TRAIN, size=min(EDGE_SAMPLE, TRAIN), replace=False)]
    edges = np.quantile(sample, np.arange(1, BINS) / BINS, axis=0).T  # (FEATURES, BINS - 1)
    binned_train = np.stack([np.searchsorted(edges[f], x_train[:, f], side="right") for f in range(FEATURES)], axis=1)
    binned_val = np.stack([np.searchsorted(edges[f], x_val[:, f], side="right") for f in range(FEATURES)], axis=1)
    prior = float(np.log(y_train.mean() / (1.0 - y_train.mean())))
    score_train, score_val = np.full(TRAIN, prior), np.full(VAL, prior)
    rows_per_tree = max(2, round(SUBSAMPLE * TRAIN))
    features_per_tree = max(1, round(COLSAMPLE * FEATURES))
    splits: list[int] = []  # per tree

    for _ in range(ROUNDS):
        p = 1.0 / (1.0 + np.exp(-score_train))
        grad, hess = p - y_train, (p * (1.0 - p) if NEWTON else np.ones(TRAIN))  # a mean-gradient step: unit weights
        allowed = np.zeros(FEATURES, dtype=bool)
        allowed[rng.choice(FEATURES, size=features_per_tree, replace=False)] = True
        tree = fit_tree(binned_train, grad, hess, np.sort(rng.choice(TRAIN, size=rows_per_tree, replace=False)), allowed)
        splits.append(int((tree["feature"] >= 0).sum()))
        score_train += LEARNING_RATE * predict(tree, binned_train)
        score_val += LEARNING_RATE * predict(tree, binned_val)
        if not np.isfinite(score_val).all():
            raise FloatingPointError("the scores are not finite: lower LEARNING_RATE or raise L2_REG")

    train_loss, val_loss = log_loss(score_train, y_train), log_loss(score_val, y_val)
    val_error = float(np.mean((score_val > 0) != (y_val > 0.5)))  # bilevel: fixed (the evaluation)
    metrics = {"val_logloss": val_loss, "train_logloss": train_loss, "val_error": val_error, "splits": sum(splits),
               "rounds": ROUNDS}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"val_logloss {val_loss:.6f} (train_logloss {train_loss:.6f}, val_error {val_error:.4f}, {sum(splits)} splits)")


if __name__ == "__main__":
    main()
