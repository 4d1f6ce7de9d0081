"""A synthetic training script: `loss` is a smooth bowl over the hyperparameters, with a little seed noise.

It follows the script-workload contract exactly (a hyperparameter block, a `---` summary block at the end)
and runs in milliseconds, so flow and CLI tests exercise the whole system without a real training.
"""

import math
import os
import random

# --- hyperparameters ---
LEARNING_RATE = 0.01        # float [1e-4, 1.0] log: step size; the best is near 0.1
WIDTH = 16                  # int [4, 256] log: model width; the best is near 64
DEPTH = 4                   # int [1, 12]: layers; the best is 2
MOMENTUM = 0.5              # float [0.0, 0.99]: the best is near 0.9
OPTIMIZER = "sgd"           # choice [sgd, adam]: adam is better by 0.2
STEPS = 100                 # int [10, 1000]: how long to train (a budget, not a knob)
SEED = 0                    # int [0, 1000]: noise seed
# constraint: WIDTH >= 4 * DEPTH
# --- end hyperparameters ---


def main() -> None:
    seed = int(os.environ.get("BILEVEL_SEED", SEED))
    rng = random.Random(seed)
    if os.environ.get("TOY_CRASH_WIDTH") and WIDTH == int(os.environ["TOY_CRASH_WIDTH"]):
        raise RuntimeError(f"toy crash at WIDTH={WIDTH}")
    loss = (
        (math.log10(LEARNING_RATE) + 1.0) ** 2
        + 0.5 * (math.log2(WIDTH) - 6.0) ** 2 / 4
        + 0.1 * (DEPTH - 2) ** 2
        + (MOMENTUM - 0.9) ** 2
        + (0.0 if OPTIMIZER == "adam" else 0.2)
        + 1.0 / math.sqrt(STEPS)
        + rng.gauss(0.0, 0.002)
    )
    print(f"trained {STEPS} steps")
    print("---")
    print(f"loss: {loss:.6f}")
    print(f"steps: {STEPS}")


if __name__ == "__main__":
    main()
