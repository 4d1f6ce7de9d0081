"""Run an example script (examples/<name>/train.py) with its block changed, in a folder of its own: its metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workloads.hyperblock import apply_changes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, changes: dict, folder: Path) -> dict:
    """examples/<name>/train.py with `changes` written into its block, run in `folder`: its metrics.json."""
    folder.mkdir()
    (folder / "train.py").write_text(apply_changes((EXAMPLES / name / "train.py").read_text(), changes))
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "metrics.json").read_text())
