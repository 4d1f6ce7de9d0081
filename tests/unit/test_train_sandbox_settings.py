"""The training sandbox's settings reach the workload the registry builds (kept apart from test_train_sandbox.py,
which tests/unit/test_hostile_unprivileged.py runs as uid 12345 with only the packages it imports)."""

from __future__ import annotations

import pytest

from infra.settings import Settings
from search.run_spec import WorkloadRef
from workloads.base import Workload
from workloads.registry import _confined, load_workload
from workloads.script import ScriptWorkload, WorkloadError

SOURCE = """# --- hyperparameters ---
STEPS = 10                  # int [1, 100]: steps
# --- end hyperparameters ---
"""


def test_the_settings_reach_the_workload(monkeypatch):
    """BILEVEL_TRAIN_SANDBOX and BILEVEL_SANDBOX_ALLOW_WEAK reach the workload the registry builds; a workload that
    runs its trainings itself cannot be confined, and says so in one line when it should be."""
    monkeypatch.setenv("BILEVEL_TRAIN_SANDBOX", "always")
    monkeypatch.setenv("BILEVEL_SANDBOX_ALLOW_WEAK", "1")
    toy = load_workload(WorkloadRef(reference="toy"), Settings())
    assert isinstance(toy, ScriptWorkload) and toy.sandboxed and toy.train_sandbox.allow_weak
    assert Settings(train_sandbox="auto").train_sandbox == "auto"
    assert not load_workload(WorkloadRef(reference="toy"), Settings(train_sandbox="auto")).sandboxed

    class InProcess(Workload):
        name = "in-process"

        def editable_source(self) -> str:
            return SOURCE

        def prepare(self) -> None:
            return None

        def run(self, source, budget, seed, run_dir, timeout_s):
            raise AssertionError("never trained here")

    with pytest.raises(WorkloadError, match="train_sandbox = never"):
        _confined(InProcess(), Settings())
    assert _confined(InProcess(), Settings(train_sandbox="never")).name == "in-process"


def test_doctor_names_what_the_training_sandbox_holds(monkeypatch):
    from bilevel.doctor import train_sandbox_check

    check = train_sandbox_check(Settings(train_sandbox="always"))
    assert check.name == "training sandbox" and "confines every training" in check.details
    assert check.state == "ok" or "missing" in check.details
