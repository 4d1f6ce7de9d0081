"""The flops budget of tinygpt: steps allowed for a budget, parameters and tokens per step (pure; imports torch)."""

from pathlib import Path

import pytest

from search.run_spec import Budget
from workloads.tinygpt.workload import run_environment

BASELINE_PARAMS = 229_384  # train.py's baseline: DEPTH 4, width 64, byte vocabulary, embedding and lm_head included
BASELINE_TOKENS = 2048  # TOTAL_BATCH_SIZE



def test_flops_per_step_is_six_params_tokens(harness):
    assert harness.flops_per_step(BASELINE_PARAMS, BASELINE_TOKENS) == 6 * 229_384 * 2048 == 2_818_670_592


@pytest.mark.parametrize(
    "steps_of_budget, expected",
    [
        (1.0, 1),  # exactly one step
        (350.0, 350),  # an exact multiple does not gain a step from rounding
        (350.001, 351),  # a little more: the step that reaches the budget is trained (ceil)
        (349.999, 350),
    ],
)
def test_steps_are_the_ceiling_of_budget_over_step_compute(harness, steps_of_budget, expected):
    per_step = harness.flops_per_step(BASELINE_PARAMS, BASELINE_TOKENS)
    assert harness.steps_for_budget(steps_of_budget * per_step, BASELINE_PARAMS, BASELINE_TOKENS) == expected


def test_default_budget_gives_the_baseline_about_350_steps(harness):
    from workloads.tinygpt.workload import DEFAULT_FLOPS, TinyGPT

    exact = 6 * BASELINE_PARAMS * BASELINE_TOKENS * 350
    default = TinyGPT(Path("/nonexistent-cache"), device="cpu").default_budget()  # what a run gets with no budget set
    assert float(f"{exact:.2g}") == harness.DEFAULT_FLOPS == DEFAULT_FLOPS == default.value == 9.9e11
    assert default.mode == "flops"
    assert TinyGPT(Path("/nonexistent-cache"), device="cuda").default_budget().model_dump() == {"mode": "time", "value": 300.0}
    assert harness.steps_for_budget(harness.DEFAULT_FLOPS, BASELINE_PARAMS, BASELINE_TOKENS) == 352


def test_bigger_batch_or_model_gets_fewer_steps(harness):
    budget = 1000 * harness.flops_per_step(BASELINE_PARAMS, BASELINE_TOKENS)
    assert harness.steps_for_budget(budget, BASELINE_PARAMS, 2 * BASELINE_TOKENS) == 500
    assert harness.steps_for_budget(budget, 2 * BASELINE_PARAMS, BASELINE_TOKENS) == 500
    assert harness.steps_for_budget(budget, 3 * BASELINE_PARAMS, BASELINE_TOKENS) == 334  # ceil(333.3)


def test_budget_below_one_step_still_trains_one_step(harness):
    assert harness.steps_for_budget(1.0, BASELINE_PARAMS, BASELINE_TOKENS) == 1
    assert harness.steps_for_budget(1e-300, 10**9, 10**6) == 1


@pytest.mark.parametrize("budget", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_budgets_are_refused(harness, budget):
    with pytest.raises(harness.HarnessError, match="positive"):
        harness.steps_for_budget(budget, BASELINE_PARAMS, BASELINE_TOKENS)


def test_invalid_params_or_tokens_are_refused(harness):
    with pytest.raises(harness.HarnessError, match="positive"):
        harness.steps_for_budget(1e9, 0, BASELINE_TOKENS)
    with pytest.raises(harness.HarnessError, match="positive"):
        harness.steps_for_budget(1e9, BASELINE_PARAMS, 0)


def test_trainable_parameters_skip_frozen_ones(harness):
    import torch

    model = torch.nn.Sequential(torch.nn.Embedding(256, 8), torch.nn.Linear(8, 4, bias=False))
    assert harness.trainable_parameters(model) == 256 * 8 + 8 * 4
    model[0].weight.requires_grad_(False)
    assert harness.trainable_parameters(model) == 8 * 4


def test_run_config_defaults_to_flops(harness):
    config = harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d"})
    assert (config.budget_mode, config.budget) == ("flops", 9.9e11)
    assert harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d", "BILEVEL_BUDGET": "2.5e9"}).budget == 2.5e9
    steps = harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d", "BILEVEL_BUDGET_MODE": "steps"})
    assert (steps.budget_mode, steps.budget) == ("steps", 350)
    with pytest.raises(harness.HarnessError, match="'flops', 'steps' or 'time'"):
        harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d", "BILEVEL_BUDGET_MODE": "tokens"})


def test_flops_budget_travels_to_the_child_and_describes_itself():
    budget = Budget(mode="flops", value=9.9e11)
    env = run_environment({}, budget=budget, seed=0, data_dir=Path("/d"), device="cpu", eval_bytes=None)
    assert (env["BILEVEL_BUDGET_MODE"], float(env["BILEVEL_BUDGET"])) == ("flops", 9.9e11)
    assert budget.describe() == "9.9e+11 FLOPs"
    assert Budget(mode="steps", value=350).describe() == "350 steps" and Budget(mode="time", value=30).describe() == "30 s"


@pytest.mark.parametrize("budget, expected_steps", [(8, [2, 4, 6]), (2, [1]), (1, [])])
def test_checkpoint_lines_report_the_mean_loss_since_the_last_one(harness, tmp_path, capsys, budget, expected_steps):
    import math

    import numpy as np

    np.arange(4096, dtype=np.uint8).tofile(tmp_path / "train.bin")
    np.arange(4096, dtype=np.uint8).tofile(tmp_path / "val.bin")
    config = harness.RunConfig(data_dir=tmp_path, budget_mode="steps", budget=float(budget), seed=0, device="cpu",
                               eval_bytes=1024)
    run = harness.Run(config)
    for step in run.training_steps():
        run.record_loss(math.log(2) * (step + 1))  # 1, 2, 3 ... bits per byte
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("checkpoint:")]
    assert [int(line.split("step=")[1].split()[0]) for line in lines] == expected_steps
    if budget == 8:  # steps 1-2, 3-4, 5-6; nothing at the end (the summary reports the end)
        assert lines == ["checkpoint: fraction=0.25 step=2 loss=1.500000", "checkpoint: fraction=0.5 step=4 loss=3.500000",
                         "checkpoint: fraction=0.75 step=6 loss=5.500000"]
    if budget == 2:
        assert lines == ["checkpoint: fraction=0.5 step=1 loss=1.000000"]  # 25% and 50% at once: the later one


def test_a_time_budget_stops_at_the_first_step_past_it_and_counts_only_steps(harness, tmp_path, monkeypatch):
    import numpy as np

    np.arange(4096, dtype=np.uint8).tofile(tmp_path / "train.bin")
    np.arange(4096, dtype=np.uint8).tofile(tmp_path / "val.bin")
    clock = type("Clock", (), {"now": 1000.0, "perf_counter": lambda self: self.now})()
    monkeypatch.setattr(harness, "time", clock)  # the harness's clock, moved by the test: no real time is measured
    run = harness.Run(harness.RunConfig(data_dir=tmp_path, budget_mode="time", budget=1.0, seed=0, device="cpu",
                                        eval_bytes=1024))
    clock.now += 50.0  # before training (startup): not training time
    for step in run.training_steps():
        assert step < 100, "the time budget never stopped the run"
        clock.now += 0.3  # one step
    # 0.9 s after three steps is under the budget, 1.2 s after four is past it: exactly four steps.
    assert run.steps == 4 and run.train_seconds == pytest.approx(1.2)
