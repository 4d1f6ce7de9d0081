"""A small editable script with a hyperparameter block, shared by the unit tests."""

SCRIPT = '''"""A toy editable script."""
import os

# --- hyperparameters: edited by the search ---
DEPTH = 4                 # int [1, 8]: transformer blocks
MATRIX_LR = 0.003         # float [1e-5, 0.3] log: learning rate of weight matrices
OPTIMIZER = "adamw"       # choice [adamw, muon]: optimizer
ADAM_BETAS = (0.9, 0.95)  # float_tuple [0.5, 0.9999]: AdamW betas
USE_BIAS = False          # bool: linear layers with biases
# --- end hyperparameters ---

print(DEPTH, MATRIX_LR, OPTIMIZER, ADAM_BETAS, USE_BIAS)
'''


def current_values(source: str) -> dict:
    """The literal values of a script's hyperparameter block as they stand (to check a rewrite)."""
    import ast

    from workloads.hyperblock import _assignments

    return {node.targets[0].id: (tuple(float(v) for v in value) if isinstance(value := ast.literal_eval(node.value), tuple)
                                 else value) for node, _ in _assignments(source)}
