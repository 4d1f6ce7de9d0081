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
