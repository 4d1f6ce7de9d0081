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


def refusal(name: str, old: str, new: str, folder: Path) -> str:
    """examples/<name>/train.py with the text `old` of its block replaced by `new`, run in `folder`: it must fail
    without writing metrics.json; what it said on stderr."""
    original = (EXAMPLES / name / "train.py").read_text()
    source = original.replace(old, new, 1)
    assert source != original, f"{old!r} is not in examples/{name}/train.py"
    (folder / "train.py").write_text(source)
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and not (folder / "metrics.json").exists()
    return done.stderr.strip()
