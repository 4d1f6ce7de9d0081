"""The FIXED part of tinygpt: run configuration, data, batches, budget, evaluation and the summary. Never edited by the search.

A run copies this file next to the candidate train.py, and the workload checks its sha256 after the run
(a candidate that rewrote it is discarded), so an edit of train.py cannot change how val_bpb is measured. train.py drives training
through `setup()`:

    run = harness.setup()                        # reads BILEVEL_* env, seeds, threads, device, data
    for step in run.training_steps(model, tokens_per_step):  # the harness owns the budget and the clock
        x, y = run.next_batch(batch_size, seq_len)
        ...
    run.report(model, context=seq_len)           # evaluates val_bpb and prints the summary block

Environment (set by the workload; all optional except the data directory):
    BILEVEL_DATA_DIR     folder holding train.bin and val.bin (uint8 bytes)
    BILEVEL_BUDGET_MODE  flops | steps | time   (default flops)
    BILEVEL_BUDGET       training compute in FLOPs, optimizer steps, or seconds of training (startup and
                         evaluation excluded); default DEFAULT_FLOPS, DEFAULT_STEPS steps, or DEFAULT_STEPS s
    BILEVEL_SEED         integer seed of model init and batch sampling (default 0)
    BILEVEL_DEVICE       auto | cpu | cuda  (default auto)
    BILEVEL_EVAL_BYTES   TEST KNOB ONLY: a smaller evaluation slice; the summary prints the size used

Budget modes:
    flops  deterministic and compute-fair: training stops after the step at which the cumulative compute
           6 x N x tokens reaches the budget, where N counts every trainable parameter (the byte embedding,
           lm_head and the scalars included) and tokens are the training tokens drawn through next_batch.
           So steps = ceil(budget / (6 x N x tokens_per_step)), at least 1 (`steps_for_budget`): a bigger
           model or batch gets fewer steps. Not counted: attention's sequence-length term, the optimizer
           (Muon's Newton-Schulz) and evaluation.
    steps  a fixed number of optimizer steps: deterministic, but a bigger model or batch buys compute.
    time   seconds of training: compute-fair on one machine, but not reproducible on CPU.
"""

from __future__ import annotations

import os
import time

_PROCESS_START = time.perf_counter()  # total_seconds counts from here: the torch import included
_PARENT_PID = os.getppid()

# Before torch is imported: spinning OpenMP workers steal the core of a neighbouring run (DESIGN §11).
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import contextlib  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VOCAB_SIZE = 256  # byte-level: every byte is a token, so bits per token = bits per byte
EVAL_BYTES = 32 * 1024  # the fixed validation slice: predicted bytes per evaluation
EVAL_CHUNKS = 8  # the slice is this many equal pieces, evenly spaced over val.bin (more representative than one)
EVAL_BATCH_TOKENS = 16 * 1024  # tokens per evaluation forward pass (memory bound only, not the metric)
# Logits before a changed byte must not move: exactly so in float32 on CPU; bf16 GPU kernels may differ in the last bits.
CAUSALITY_TOLERANCE = {"cpu": 1e-4, "cuda": 2e-2}
SUMMARY_SEPARATOR = "---"
DEFAULT_STEPS = 350  # about 30 s of training for the baseline on one unloaded CPU thread (README.md)
# 6 x 229,384 params x 2,048 tokens x 350 steps = 9.87e11, to 2 significant digits: the baseline gets 352 steps.
DEFAULT_FLOPS = 9.9e11
BUDGET_MODES = ("flops", "steps", "time")
FLOPS_PER_PARAM_TOKEN = 6  # forward 2 + backward 4 FLOPs per parameter and token (one multiply-add = 2 FLOPs)
# Fractions of the budget at which the training loss is reported (a `checkpoint:` line, read by early stopping).
CHECKPOINTS = (0.25, 0.5, 0.75)


class HarnessError(RuntimeError):
    """A run cannot be measured as configured; the message says what to fix."""


def flops_per_step(num_params: int, tokens_per_step: int) -> int:
    """Training compute of one optimizer step: 6 x trainable parameters x tokens (exact, an int)."""
    if num_params < 1 or tokens_per_step < 1:
        raise HarnessError(f"num_params and tokens_per_step must be positive, got {num_params} and {tokens_per_step}")
    return FLOPS_PER_PARAM_TOKEN * num_params * tokens_per_step


def steps_for_budget(budget: float, num_params: int, tokens_per_step: int) -> int:
    """Steps of a flops budget: the first step at which cumulative compute reaches `budget`, and at least 1.

    ceil(budget / (6 x num_params x tokens_per_step)) in exact rational arithmetic, so a budget that is an
    exact multiple of a step's compute never gains a step from float rounding. A budget below one step's
    compute still trains one step (the summary's train_flops then exceeds the budget).
    """
    if not (math.isfinite(budget) and budget > 0):
        raise HarnessError(f"a flops budget must be a positive number, got {budget!r}")
    return max(1, math.ceil(Fraction(budget) / flops_per_step(num_params, tokens_per_step)))


def trainable_parameters(model: torch.nn.Module) -> int:
    """Parameters with requires_grad (shared tensors once): the N of the compute budget."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class RunConfig:
    """The run parameters the workload passes through the environment."""

    data_dir: Path
    budget_mode: str
    budget: float
    seed: int
    device: str
    eval_bytes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RunConfig:
        data_dir = env.get("BILEVEL_DATA_DIR")
        if not data_dir:
            raise HarnessError("BILEVEL_DATA_DIR is not set: point it at the folder with train.bin and val.bin")
        mode = env.get("BILEVEL_BUDGET_MODE", "flops")
        if mode not in BUDGET_MODES:
            raise HarnessError(f"BILEVEL_BUDGET_MODE must be 'flops', 'steps' or 'time', got {mode!r}")
        default_budget = repr(DEFAULT_FLOPS) if mode == "flops" else str(DEFAULT_STEPS)
        budget = _env_number(env, "BILEVEL_BUDGET", default_budget, float)
        if not (math.isfinite(budget) and budget > 0):
            raise HarnessError(f"BILEVEL_BUDGET must be a positive number, got {budget!r}")
        if mode == "steps" and not budget.is_integer():
            raise HarnessError(f"a steps budget must be a whole number, got {budget!r}")
        seed = _env_number(env, "BILEVEL_SEED", "0", int)
        device = env.get("BILEVEL_DEVICE", "auto")
        if device not in ("auto", "cpu", "cuda"):
            raise HarnessError(f"BILEVEL_DEVICE must be auto, cpu or cuda, got {device!r}")
        eval_bytes = _env_number(env, "BILEVEL_EVAL_BYTES", str(EVAL_BYTES), int)
        if eval_bytes <= 0 or eval_bytes % EVAL_CHUNKS:
            raise HarnessError(f"BILEVEL_EVAL_BYTES must be a positive multiple of {EVAL_CHUNKS}, got {eval_bytes}")
        return cls(Path(data_dir), mode, budget, seed, device, eval_bytes)


def _env_number(env: Mapping[str, str], name: str, default: str, kind: type) -> Any:
    text = env.get(name, default)
    try:
        return kind(text)
    except ValueError:
        raise HarnessError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {text!r}") from None


def resolve_device(requested: str) -> torch.device:
    """The torch device of a run; 'cuda' without a GPU is an error rather than a silent CPU run."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise HarnessError("BILEVEL_DEVICE=cuda but torch sees no CUDA device")
    return torch.device(requested)


def configure_torch(device: torch.device, seed: int) -> None:
    """Threads, precision and seeds: one thread on CPU (as fast as two here, and immune to a busy neighbour)."""
    if device.type == "cpu":
        torch.set_num_threads(1)
        with contextlib.suppress(RuntimeError):  # raises if already set in this process; the value stays valid
            torch.set_num_interop_threads(1)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(seed)


def load_split(data_dir: Path, name: str) -> torch.Tensor:
    """One split as a uint8 tensor; a missing file names the command that provisions it."""
    path = data_dir / f"{name}.bin"
    if not path.is_file():
        raise HarnessError(f"{path} not found: run `python -m workloads.tinygpt.data` to prepare the corpus")
    return torch.from_numpy(np.fromfile(path, dtype=np.uint8))


def eval_windows(val: torch.Tensor, eval_bytes: int, context: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed slice as (inputs, targets) batches of equal-length windows: exactly `eval_bytes` targets.

    The slice is EVAL_CHUNKS pieces evenly spaced over val.bin. Each piece is cut into windows of
    `context` bytes (the last one shorter when `context` does not divide it), so every target byte is
    predicted from the bytes before it in its window.
    """
    chunk = eval_bytes // EVAL_CHUNKS
    if val.numel() < chunk + 1:
        raise HarnessError(f"val.bin has {val.numel()} bytes, fewer than one evaluation piece ({chunk + 1})")
    span = val.numel() - chunk - 1
    starts = [round(i * span / (EVAL_CHUNKS - 1)) for i in range(EVAL_CHUNKS)]
    width = max(1, min(context, chunk))
    by_length: dict[int, list[torch.Tensor]] = {}
    for start in starts:
        for offset in range(0, chunk, width):
            length = min(width, chunk - offset)
            by_length.setdefault(length, []).append(val[start + offset : start + offset + length + 1])
    batches = []
    for length, windows in sorted(by_length.items(), reverse=True):
        stacked = torch.stack(windows).long()
        per_batch = max(1, EVAL_BATCH_TOKENS // length)
        for first in range(0, len(windows), per_batch):
            part = stacked[first : first + per_batch]
            batches.append((part[:, :-1], part[:, 1:]))
    return batches


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    logits = model(inputs)
    expected = (*inputs.shape, VOCAB_SIZE)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise HarnessError(f"model(inputs) must return logits of shape {expected}, got {shape}")
    return logits.float()


def check_causal(model: torch.nn.Module, inputs: torch.Tensor, device: torch.device) -> None:
    """Changing the last byte of a window must not change the predictions before it.

    A sanity check against an accidentally non-causal model (which would read its targets), not a proof.
    """
    window = inputs[:1].to(device)
    if window.size(1) < 2:
        return
    changed = window.clone()
    changed[0, -1] = (changed[0, -1] + 1) % VOCAB_SIZE
    with _autocast(device):
        before = _logits(model, window)[0, :-1]
        after = _logits(model, changed)[0, :-1]
    drift = (before - after).abs().max().item()
    if not drift <= CAUSALITY_TOLERANCE[device.type]:
        raise HarnessError(f"the model is not causal: changing byte t moved the logits before t by {drift:.3g}")


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, val: torch.Tensor, context: int, device: torch.device, eval_bytes: int = EVAL_BYTES) -> float:
    """Bits per byte over the fixed validation slice: summed cross-entropy in nats / (ln 2 x bytes)."""
    was_training = model.training
    model.eval()
    batches = eval_windows(val, eval_bytes, context)
    check_causal(model, batches[0][0], device)
    total_nats = 0.0
    total_bytes = 0
    for inputs, targets in batches:
        inputs, targets = inputs.to(device), targets.to(device)
        with _autocast(device):
            logits = _logits(model, inputs)
        total_nats += F.cross_entropy(logits.view(-1, VOCAB_SIZE), targets.reshape(-1), reduction="sum").item()
        total_bytes += targets.numel()
    model.train(was_training)
    if total_bytes != eval_bytes:  # pragma: no cover - eval_windows guarantees it
        raise HarnessError(f"evaluated {total_bytes} bytes instead of {eval_bytes}")
    bpb = total_nats / (math.log(2) * total_bytes)
    if not math.isfinite(bpb):
        raise FloatingPointError(f"val_bpb is {bpb}: the model produced non-finite logits (training diverged)")
    return bpb


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def format_summary(fields: dict[str, object]) -> str:
    """The one greppable block: a `---` line, then `key: value` lines."""
    width = max(len(key) for key in fields) + 2
    lines = [SUMMARY_SEPARATOR] + [f"{key + ':':<{width}}{value}" for key, value in fields.items()]
    return "\n".join(lines)


def print_summary(
    *,
    val_bpb: float,
    eval_bytes: int,
    steps: int,
    tokens: int,
    train_flops: int | None,
    train_seconds: float,
    num_params: int,
    peak_memory: float,
    device: torch.device,
    budget_mode: str,
    budget: str,
    seed: int,
    train_bpb: float | None = None,
    eval_seconds: float | None = None,
) -> None:
    """Print the summary block the workload parses (one per run)."""
    fields: dict[str, object] = {
        "val_bpb": f"{val_bpb:.6f}",
        "eval_bytes": eval_bytes,
        "train_bpb": "n/a" if train_bpb is None else f"{train_bpb:.6f}",
        "steps": steps,
        "tokens": tokens,
        "train_flops": "n/a" if train_flops is None else train_flops,
        "train_seconds": f"{train_seconds:.2f}",
        "eval_seconds": "n/a" if eval_seconds is None else f"{eval_seconds:.2f}",
        "total_seconds": f"{time.perf_counter() - _PROCESS_START:.2f}",
        "num_params": num_params,
        "peak_memory_mb": f"{peak_memory:.1f}",
        "device": device.type,
        "budget_mode": budget_mode,
        "budget": budget,
        "seed": seed,
    }
    print(format_summary(fields), flush=True)


_FLOPS_NEEDS_MODEL = (
    "a flops budget needs the model and the tokens per step: "
    "call run.training_steps(model, tokens_per_step=TOTAL_BATCH_SIZE)"
)


class Run:
    """One training run: owns the data, the batch sampler, the budget and the training clock."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        configure_torch(self.device, config.seed)
        self.train = load_split(config.data_dir, "train")
        self.val = load_split(config.data_dir, "val")
        if self.device.type == "cuda":
            self.train = self.train.to(self.device)  # a few MB: sample batches on the GPU
        # Batches have their own generator, so a change of model init does not change the data order.
        self._batch_generator = torch.Generator().manual_seed(config.seed + 1)
        self.steps = 0
        self.tokens = 0
        self.train_seconds = 0.0
        self.num_params: int | None = None  # trainable parameters, counted when training starts
        self.tokens_per_step: int | None = None  # declared by train.py; checked every step in flops mode
        self.planned_steps: int | None = None  # flops mode: steps_for_budget(budget, num_params, tokens_per_step)
        self._losses: list[float] = []  # training losses recorded since the last checkpoint
        self._next_checkpoint = 0  # index into CHECKPOINTS

    @property
    def budget_text(self) -> str:
        mode, budget = self.config.budget_mode, self.config.budget
        if mode == "steps":
            return f"{int(budget)} steps"
        if mode == "flops":
            return f"{budget:g} FLOPs" + (f" ({self.planned_steps} steps)" if self.planned_steps is not None else "")
        return f"{budget:g} s"

    @property
    def train_flops(self) -> int | None:
        """Compute used so far: 6 x trainable parameters x training tokens drawn; None before the model is known."""
        return None if self.num_params is None else FLOPS_PER_PARAM_TOKEN * self.num_params * self.tokens

    def autocast(self):
        """bf16 autocast on CUDA, nothing on CPU (bf16 matmuls are slow on most CPUs)."""
        return _autocast(self.device)

    def next_batch(self, batch_size: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random windows of `seq_len` bytes and their next-byte targets (int64, on device)."""
        if batch_size < 1 or seq_len < 1:
            raise HarnessError(f"batch_size and seq_len must be positive, got {batch_size} and {seq_len}")
        starts = torch.randint(0, self.train.numel() - seq_len - 1, (batch_size,), generator=self._batch_generator)
        index = starts.to(self.train.device)[:, None] + torch.arange(seq_len + 1, device=self.train.device)
        window = self.train[index].long()
        self.tokens += batch_size * seq_len
        return window[:, :-1], window[:, 1:]

    def progress(self) -> float:
        """Fraction of the budget used, in [0, 1]: training seconds / budget, or in steps mode the middle of
        the current step, (steps + 0.5) / budget, so neither the first nor the last step gets a zero schedule."""
        if self.config.budget_mode == "steps":
            return min(1.0, (self.steps + 0.5) / self.config.budget)
        if self.config.budget_mode == "flops":
            return min(1.0, (self.steps + 0.5) / self._planned_steps())
        return min(1.0, self.train_seconds / self.config.budget)

    def record_loss(self, loss: float) -> None:
        """The step's training loss (nats per byte), for the `checkpoint:` lines at CHECKPOINTS of the budget."""
        self._losses.append(float(loss))

    def used_fraction(self) -> float:
        """Fraction of the budget used by the steps done so far (steps, not the middle of a step, unlike progress)."""
        if self.config.budget_mode == "steps":
            return self.steps / self.config.budget
        if self.config.budget_mode == "flops":
            return self.steps / self._planned_steps()
        return self.train_seconds / self.config.budget

    def _report_checkpoint(self) -> None:
        """After a step: once the used budget reaches the next checkpoint, print the mean training loss (in bits
        per byte) of the steps since the previous one. Nothing when train.py records no loss."""
        fraction = self.used_fraction()
        reached = None
        while self._next_checkpoint < len(CHECKPOINTS) and fraction >= CHECKPOINTS[self._next_checkpoint]:
            reached = CHECKPOINTS[self._next_checkpoint]
            self._next_checkpoint += 1
        if reached is None or not self._losses or fraction >= 1.0:
            return
        loss = sum(self._losses) / len(self._losses) / math.log(2)
        self._losses.clear()
        print(f"checkpoint: fraction={reached} step={self.steps} loss={loss:.6f}", flush=True)

    def budget_spent(self) -> bool:
        if self.config.budget_mode == "steps":
            return self.steps >= self.config.budget
        if self.config.budget_mode == "flops":
            return self.steps >= self._planned_steps()
        return self.train_seconds >= self.config.budget

    def _planned_steps(self) -> int:
        if self.planned_steps is None:
            raise HarnessError(_FLOPS_NEEDS_MODEL)
        return self.planned_steps

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def training_steps(self, model: torch.nn.Module | None = None, tokens_per_step: int | None = None) -> Iterator[int]:
        """Step indices until the budget is spent; the time inside each step is the training time.

        `model` and `tokens_per_step` (the training tokens each optimizer step draws through next_batch)
        size a flops budget, and are required in flops mode. The plan is made here, before the first
        step, and each step is checked to draw exactly `tokens_per_step` tokens.
        """
        if model is not None:
            self.num_params = trainable_parameters(model)
        if tokens_per_step is not None:
            if isinstance(tokens_per_step, bool) or not isinstance(tokens_per_step, int) or tokens_per_step < 1:
                raise HarnessError(f"tokens_per_step must be a positive int, got {tokens_per_step!r}")
            self.tokens_per_step = tokens_per_step
        if self.config.budget_mode == "flops":
            if self.num_params is None or self.tokens_per_step is None:
                raise HarnessError(_FLOPS_NEEDS_MODEL)
            per_step = flops_per_step(self.num_params, self.tokens_per_step)
            self.planned_steps = steps_for_budget(self.config.budget, self.num_params, self.tokens_per_step)
            print(
                f"flops budget {self.config.budget:g}: {self.planned_steps} steps of {per_step:.4g} FLOPs "
                f"(6 x {self.num_params:,} trainable params x {self.tokens_per_step:,} tokens)",
                flush=True,
            )
            if per_step > self.config.budget:
                print(f"warning: the budget is smaller than one step; training 1 step ({per_step:.4g} FLOPs)", flush=True)
        return self._steps()

    def _steps(self) -> Iterator[int]:
        check_tokens = self.config.budget_mode == "flops"
        while not self.budget_spent():
            if os.getppid() != _PARENT_PID:
                # The launcher died (killed, not interrupted): do not train on as an orphan nobody reads.
                raise HarnessError("the process that started this run has exited; stopping")
            tokens_before = self.tokens
            started = time.perf_counter()
            yield self.steps
            self.synchronize()  # GPU work is asynchronous: count it in the step that queued it
            self.train_seconds += time.perf_counter() - started
            if check_tokens and self.tokens - tokens_before != self.tokens_per_step:
                raise HarnessError(
                    f"step {self.steps} drew {self.tokens - tokens_before} training tokens, but tokens_per_step is "
                    f"{self.tokens_per_step}: the flops budget is sized by the declared tokens per step"
                )
            self.steps += 1
            self._report_checkpoint()

    def report(self, model: torch.nn.Module, context: int, train_bpb: float | None = None) -> float:
        """Evaluate val_bpb on the fixed slice and print the summary block; returns val_bpb."""
        trainable = trainable_parameters(model)
        if self.num_params is None:
            self.num_params = trainable  # steps and time modes without a model passed to training_steps
        elif trainable != self.num_params and self.config.budget_mode == "flops":
            raise HarnessError(
                f"the model has {trainable:,} trainable parameters, but the flops budget was sized for "
                f"{self.num_params:,}: do not add or unfreeze parameters after training_steps()"
            )
        eval_started = time.perf_counter()
        val_bpb = evaluate_bpb(model, self.val, context, self.device, self.config.eval_bytes)
        eval_seconds = time.perf_counter() - eval_started
        print_summary(
            val_bpb=val_bpb,
            eval_bytes=self.config.eval_bytes,
            steps=self.steps,
            tokens=self.tokens,
            train_flops=self.train_flops,
            train_seconds=self.train_seconds,
            num_params=sum(p.numel() for p in model.parameters()),
            peak_memory=peak_memory_mb(self.device),
            device=self.device,
            budget_mode=self.config.budget_mode,
            budget=self.budget_text,
            seed=self.config.seed,
            train_bpb=train_bpb,
            eval_seconds=eval_seconds,
        )
        return val_bpb


def setup() -> Run:
    """The run described by the environment, ready to train."""
    return Run(RunConfig.from_env())
