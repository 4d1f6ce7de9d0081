"""End to end through the command line, as a user runs it: `bilevel run` with all levels (the scripted LLM
standing in for the model service; the embedded S3 server started and stopped by the CLI), then `runs`,
`report`, `lineage` and `mechanisms list|show` on what it produced. The scripted mechanism is live (it changes which
candidate trains) but does nothing for the search, so Level 2 must reject it at the benefit stage, with its numbers,
and keep it as a rejected attempt (the activation path is tests/integration/test_outer_loop.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from infra.services import find_free_s3_port
from tests.integration.scripted import proposal, write_script

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MECHANISM = '''class PreferSecond:
    """Ask for two candidates and train the second one."""

    name = "prefer_second"

    def plan(self, ctx):
        return {"n_candidates": 2}

    def screen(self, ctx, candidates):
        if len(candidates) > 1:
            return {"choose": len(candidates) - 1}
        return None
'''


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("e2e")
    script = write_script(tmp / "answers.json", answers={
        "propose": [proposal({"MATRIX_LR": 0.006}), proposal({"EMBEDDING_LR": 0.01}), proposal({"SCALAR_LR": 0.01})],
        "adjust_config": [{"freeze": [], "unfreeze": [], "strategy": "balanced", "guidance": "", "reason": "fine"}],
        "research.explore": [{"ideas": [{"problem": "p", "evidence": "e", "idea": "two candidates, prefer the second"}]}],
        "research.specify": [{"name": "prefer_second", "hooks": ["plan", "screen"], "state": "none", "behaviour": "b"}],
        "research.generate": [f"```python\n{MECHANISM}```"],
    }, by_key={"propose/g1/t0/i0/*/c1/*": proposal({"FINAL_LR_FRAC": 0.1}),
               "propose/g1/t0/i1/*/c1/*": proposal({"FINAL_LR_FRAC": 0.2})})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(tmp / "state"), BILEVEL_MODEL="scripted/replay",
               BILEVEL_SCRIPTED_ANSWERS=str(script), BILEVEL_BUDGET_MODE="steps", BILEVEL_BUDGET="6",
               BILEVEL_ITERATIONS="2", BILEVEL_GENERATIONS="2", BILEVEL_S3_PORT=str(find_free_s3_port()),
               COLUMNS="200")

    def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=tmp)
        assert done.returncode == 0, f"bilevel {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done

    first = run("run", "--id", "e2e-night")
    return run, first, tmp / "state"


def test_run_prints_the_summary(cli) -> None:
    _, first, state = cli
    assert "meta-run e2e-night" in first.stdout and "best val_bpb" in first.stdout
    # the Level-2 verdict on the progress display: live, but the simulated next generation shows no gain
    assert "rejected at benefit" in first.stdout and re.search(r"live, but (no simulated gain|it changed no simulated "
                                                               r"outcome): simulated Δ", first.stdout)
    assert "mechanisms: none" in first.stdout.split("generation 1 done")[1]
    assert (state / "runs" / "e2e-night" / "summary.json").is_file()
    assert not (state / "s3" / "server.json").exists()  # the CLI stops the server it started (and drops its pid file)


def test_runs_report_lineage_and_mechanisms(cli) -> None:
    run, _, state = cli
    assert "e2e-night" in run("runs").stdout
    report = run("report", "e2e-night").stdout
    assert "report:" in report and (state / "reports" / "e2e-night" / "index.html").is_file()
    lineage = run("lineage", "e2e-night").stdout
    assert "prefer_second@" in lineage and "(rejected)" in lineage and "(accepted)" not in lineage
    assert "prefer_second" not in run("mechanisms", "list").stdout  # nothing was accepted
    listing = run("mechanisms", "list", "--status", "rejected").stdout
    assert "prefer_second" in listing and "e2e-night" in listing
