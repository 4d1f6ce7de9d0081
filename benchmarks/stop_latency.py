"""How fast a stop is: SIGTERM/SIGINT to a real `bilevel run` mid-training (Prefect, SeaweedFS and a training
running) and to `bilevel ui`, until the command exits and until the last process under it is gone; and how fast
a bad model string fails. Prints JSON (commit it under benchmarks/results/). Usage:

    .venv/bin/python benchmarks/stop_latency.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _gone_after(tree, started: float) -> float:
    from tests.integration.stopping import still_alive

    assert still_alive(tree, timeout_s=60) == [], "processes left behind"
    return time.monotonic() - started


def stop_run(scratch: Path, sig: int, index: int) -> dict:
    from tests.integration.stopping import answers, start_run, wait_mid_training

    state, log = scratch / f"run{index}" / "state", scratch / f"run{index}" / "run.log"
    state.parent.mkdir(parents=True)
    process = start_run(state, answers(state.parent), log, f"bench{index}", "--mechanisms", "best")
    return _stopped("run", process, wait_mid_training(process, state, log), sig)


def _stopped(command: str, process, tree: list, sig: int) -> dict:
    """Send `sig`; how long until the command exited and until every process under it was gone."""
    started = time.monotonic()
    process.send_signal(sig)
    process.wait(timeout=120)
    exited = time.monotonic() - started
    return {"command": command, "signal": signal.Signals(sig).name, "exit_code": process.returncode,
            "exit_s": round(exited, 2), "all_gone_s": round(_gone_after(tree, started), 2),
            "processes": len(tree)}


def stop_ui(scratch: Path, sig: int, index: int) -> dict:
    from tests.integration.stopping import descendants, start_ui

    state = scratch / f"ui{index}" / "state"
    state.mkdir(parents=True)
    process, _ = start_ui(state, state.parent / "ui.log")
    return _stopped("ui", process, descendants(process.pid), sig)


def bad_model(scratch: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(scratch / "bad" / "state"), PYTHONPATH=str(ROOT))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bilevel.cli", "run", "--model", "nonsense/x"], env=env,
                          capture_output=True, text=True, timeout=120)
    return {"command": "run --model nonsense/x", "exit_code": done.returncode, "seconds": round(time.monotonic() - started, 2),
            "stderr_lines": len(done.stderr.strip().splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bilevel-stop-"))
    cases = []
    for index in range(args.repeats):
        for sig in (signal.SIGTERM, signal.SIGINT):
            cases.append(stop_run(scratch, sig, 2 * index + (sig == signal.SIGINT)))
            print(json.dumps(cases[-1]), file=sys.stderr)
        cases.append(stop_ui(scratch, signal.SIGTERM, index))
        print(json.dumps(cases[-1]), file=sys.stderr)
    models = [bad_model(scratch) for _ in range(3)]
    runs = [c["exit_s"] for c in cases if c["command"] == "run"]
    print(json.dumps({
        "target_s": 10,
        "run_exit_s_median": statistics.median(runs), "run_exit_s_max": max(runs),
        "run_all_gone_s_max": max(c["all_gone_s"] for c in cases if c["command"] == "run"),
        "ui_exit_s_max": max(c["exit_s"] for c in cases if c["command"] == "ui"),
        "bad_model_s_max": max(m["seconds"] for m in models),
        "load_1min": round(os.getloadavg()[0], 2),
        "cases": cases, "bad_model": models,
    }, indent=1))


if __name__ == "__main__":
    main()
