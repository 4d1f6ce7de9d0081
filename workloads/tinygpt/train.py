"""tinygpt train.py: the EDITABLE script. A byte-level GPT trained for a fixed budget; the harness measures val_bpb.

The search edits the hyperparameter block below (and, later, the code). Data, budget, evaluation and
the summary live in harness.py, which is fixed. Model width = DEPTH * ASPECT_RATIO rounded up to a
multiple of HEAD_DIM (as in karpathy/autoresearch), so DEPTH alone scales both depth and width.
"""

import math

import harness  # first: it configures OpenMP before torch is imported
import torch
import torch.nn as nn
import torch.nn.functional as F

# --- hyperparameters ---
DEPTH = 4                   # int [1, 12]: transformer blocks; width = DEPTH * ASPECT_RATIO rounded up to a multiple of HEAD_DIM
ASPECT_RATIO = 16           # int [4, 64]: model width per block of depth
HEAD_DIM = 32               # int [8, 128]: channels per attention head (even, for rotary embeddings)
SEQ_LEN = 128               # int [16, 1024] log: context length in bytes (training and evaluation)
TOTAL_BATCH_SIZE = 2048     # int [256, 16384] log: tokens per optimizer step (a multiple of DEVICE_BATCH_SIZE * SEQ_LEN)
DEVICE_BATCH_SIZE = 8       # int [1, 128] log: sequences per forward pass; gradient accumulation = TOTAL_BATCH_SIZE / (DEVICE_BATCH_SIZE * SEQ_LEN)
OPTIMIZER = "adamw"         # choice [adamw, muon]: optimizer of the 2-D weight matrices in the blocks (AdamW for everything else)
MATRIX_LR = 0.003           # float [1e-4, 0.1] log: learning rate of the block weight matrices
EMBEDDING_LR = 0.003        # float [1e-4, 1.0] log: learning rate of the input byte embedding
UNEMBEDDING_LR = 0.003      # float [1e-4, 0.1] log: learning rate of the output projection (lm_head)
SCALAR_LR = 0.003           # float [1e-4, 1.0] log: learning rate of the per-block residual mixing scalars
WEIGHT_DECAY = 0.1          # float [0.0, 0.5]: decoupled weight decay of the block weight matrices
ADAM_BETAS = (0.9, 0.95)    # float_tuple [0.5, 0.999]: AdamW betas
MUON_MOMENTUM = 0.95        # float [0.8, 0.99]: Nesterov momentum of Muon (used when OPTIMIZER is muon)
WARMUP_RATIO = 0.05         # float [0.0, 0.5]: fraction of the budget with a linear learning-rate warmup
WARMDOWN_RATIO = 0.3        # float [0.0, 1.0]: fraction of the budget at the end with a linear decay to FINAL_LR_FRAC
FINAL_LR_FRAC = 0.0         # float [0.0, 1.0]: learning rate at the end of the warmdown, as a fraction of the peak
# constraint: TOTAL_BATCH_SIZE % (DEVICE_BATCH_SIZE * SEQ_LEN) == 0
# constraint: HEAD_DIM % 2 == 0
# constraint: WARMUP_RATIO + WARMDOWN_RATIO <= 1
# --- end hyperparameters ---

LOGIT_SOFTCAP = 15.0  # tanh cap on the logits, as in nanochat: keeps early training stable
NEWTON_SCHULZ_STEPS = 5


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, device: torch.device, base: float = 10000.0):
    """cos/sin tables of rotary position embeddings, shaped (1, 1, seq_len, head_dim / 2)."""
    inverse_frequency = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inverse_frequency)
    return angles.cos()[None, None], angles.sin()[None, None]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, head_dim: int) -> None:
        super().__init__()
        self.heads = width // head_dim
        self.head_dim = head_dim
        self.c_q = nn.Linear(width, width, bias=False)
        self.c_k = nn.Linear(width, width, bias=False)
        self.c_v = nn.Linear(width, width, bias=False)
        self.c_proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        shape = (batch, time, self.heads, self.head_dim)
        q = self.c_q(x).view(shape).transpose(1, 2)
        k = self.c_k(x).view(shape).transpose(1, 2)
        v = self.c_v(x).view(shape).transpose(1, 2)
        q = apply_rotary(rms_norm(q), cos[:, :, :time], sin[:, :, :time])  # QK-norm, then rotary
        k = apply_rotary(rms_norm(k), cos[:, :, :time], sin[:, :, :time])
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(batch, time, width))


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width, bias=False)
        self.c_proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU squared, as in nanochat


class Block(nn.Module):
    def __init__(self, width: int, head_dim: int) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(width, head_dim)
        self.mlp = MLP(width)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, depth: int, width: int, head_dim: int, seq_len: int, device: torch.device) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.wte = nn.Embedding(harness.VOCAB_SIZE, width)
        self.blocks = nn.ModuleList(Block(width, head_dim) for _ in range(depth))
        self.lm_head = nn.Linear(width, harness.VOCAB_SIZE, bias=False)
        # Per block: x = resid_lambda * x + x0_lambda * x0, mixing the embedding back in (autoresearch).
        self.resid_lambdas = nn.Parameter(torch.ones(depth))
        self.x0_lambdas = nn.Parameter(torch.zeros(depth))
        cos, sin = rotary_tables(seq_len, head_dim, device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self._init_weights(width)

    @torch.no_grad()
    def _init_weights(self, width: int) -> None:
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        bound = math.sqrt(3.0) * width**-0.5  # uniform with std 1/sqrt(width)
        for block in self.blocks:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)  # each block starts as the identity
            nn.init.zeros_(block.mlp.c_proj.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        x = x0 = rms_norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            x = block(x, self.cos, self.sin)
        logits = self.lm_head(rms_norm(x)).float()
        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def orthogonalize(update: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """Newton-Schulz iteration towards the nearest semi-orthogonal matrix (Muon; coefficients from Keller Jordan)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = update.bfloat16() if update.is_cuda else update.float()  # bf16 is fast on GPUs, slow on CPUs
    transposed = x.size(-2) > x.size(-1)
    if transposed:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    if transposed:
        x = x.mT
    return x.to(update.dtype)


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton-schulz, for 2-D weight matrices only."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buffer = self.state[p].setdefault("momentum", torch.zeros_like(p.grad))
                buffer.lerp_(p.grad, 1 - group["momentum"])
                nesterov = p.grad.lerp(buffer, group["momentum"])
                scale = max(1.0, p.size(-2) / p.size(-1)) ** 0.5  # equal RMS update for tall matrices
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(orthogonalize(nesterov), alpha=-group["lr"] * scale)


def build_optimizers(model: GPT) -> list[torch.optim.Optimizer]:
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    adam_groups = [
        dict(params=[model.wte.weight], lr=EMBEDDING_LR, weight_decay=0.0),
        dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR, weight_decay=0.0),
        dict(params=[model.resid_lambdas, model.x0_lambdas], lr=SCALAR_LR, weight_decay=0.0),
    ]
    optimizers: list[torch.optim.Optimizer] = []
    if OPTIMIZER == "muon":
        optimizers.append(Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY))
    elif OPTIMIZER == "adamw":
        adam_groups.append(dict(params=matrices, lr=MATRIX_LR, weight_decay=WEIGHT_DECAY))
    else:
        raise ValueError(f"OPTIMIZER must be 'adamw' or 'muon', got {OPTIMIZER!r}")
    optimizers.insert(0, torch.optim.AdamW(adam_groups, betas=ADAM_BETAS, eps=1e-8))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers


def lr_multiplier(progress: float) -> float:
    """Linear warmup, constant, then linear warmdown to FINAL_LR_FRAC; `progress` is the used budget in [0, 1]."""
    if progress < WARMUP_RATIO:
        return (progress + 1e-8) / WARMUP_RATIO
    if progress <= 1.0 - WARMDOWN_RATIO:
        return 1.0
    remaining = (1.0 - progress) / WARMDOWN_RATIO
    return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * remaining


def main() -> None:
    assert HEAD_DIM % 2 == 0, f"HEAD_DIM must be even for rotary embeddings, got {HEAD_DIM}"
    assert WARMUP_RATIO + WARMDOWN_RATIO <= 1.0, f"WARMUP_RATIO + WARMDOWN_RATIO must be <= 1, got {WARMUP_RATIO + WARMDOWN_RATIO}"
    tokens_per_micro_batch = DEVICE_BATCH_SIZE * SEQ_LEN
    assert TOTAL_BATCH_SIZE % tokens_per_micro_batch == 0, (
        f"TOTAL_BATCH_SIZE ({TOTAL_BATCH_SIZE}) must be a multiple of DEVICE_BATCH_SIZE * SEQ_LEN "
        f"({DEVICE_BATCH_SIZE} * {SEQ_LEN} = {tokens_per_micro_batch})"
    )
    accumulation = TOTAL_BATCH_SIZE // tokens_per_micro_batch
    width = -(-DEPTH * ASPECT_RATIO // HEAD_DIM) * HEAD_DIM

    run = harness.setup()
    model = GPT(DEPTH, width, HEAD_DIM, SEQ_LEN, run.device).to(run.device)
    optimizers = build_optimizers(model)
    steps = run.training_steps(model, tokens_per_step=TOTAL_BATCH_SIZE)  # sizes a flops budget: 6 x params x tokens
    print(f"width {width}, heads {width // HEAD_DIM}, accumulation {accumulation}, budget {run.budget_text}", flush=True)

    smoothed_loss, smoothing = 0.0, 0.95
    for step in steps:
        multiplier = lr_multiplier(run.progress())
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * multiplier
        for _ in range(accumulation):
            x, y = run.next_batch(DEVICE_BATCH_SIZE, SEQ_LEN)
            with run.autocast():
                loss = model(x, y)
            (loss / accumulation).backward()
        for optimizer in optimizers:
            optimizer.step()
        model.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss is {loss_value} at step {step}: training diverged")
        run.record_loss(loss_value)  # reported at fixed fractions of the budget (early stopping reads it)
        smoothed_loss = smoothing * smoothed_loss + (1 - smoothing) * loss_value
        if step % 100 == 0:
            print(f"step {step:5d}  loss {loss_value:.4f}  lr x{multiplier:.3f}", flush=True)

    debiased = smoothed_loss / (1 - smoothing**run.steps) if run.steps else float("nan")
    run.report(model, context=SEQ_LEN, train_bpb=debiased / math.log(2))


if __name__ == "__main__":
    main()
