"""Training in a sandbox: when it applies, the command line that confines a training (workloads/train_launcher.py
around the OS layer of mechanisms/sandbox_os.py), and the one-time check that this machine offers it."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mechanisms import sandbox_os
from search.run_spec import EditsMode
from workloads.train_launcher import PROBE_FLAG

TrainSandboxMode = Literal["auto", "always", "never"]
LAUNCHER_PATH = Path(__file__).resolve().with_name("train_launcher.py")
CONFINEMENT_PATH = Path(sandbox_os.__file__).resolve()  # the launcher loads it by path: the one OS layer
PROBE_TIMEOUT_S = 60.0

_probed: dict[tuple[str, str], dict[str, Any]] = {}  # (interpreter, spec) -> the probe's answer, once per process
_probe_lock = threading.Lock()


class TrainSandboxRefused(ValueError):
    """This machine cannot confine a training and weak sandboxes are not allowed; one line, for the user."""


@dataclass(frozen=True)
class TrainSandbox:
    """`mode` (settings.train_sandbox): auto confines the trainings of LLM-written code (edits = code), always every
    training, never none. `allow_weak` (settings.sandbox_allow_weak): train even where a protection is missing.
    `options`: sandbox_os knobs over the launcher's (tests: switch a layer off)."""

    mode: TrainSandboxMode = "never"
    allow_weak: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def applies(self, edits: EditsMode) -> bool:
        return self.mode == "always" or (self.mode == "auto" and edits == "code")

    def spec(self, *, read_paths: Sequence[Path] = (), write_paths: Sequence[Path] = (),
             tmp_dir: Path | None = None) -> str:
        return json.dumps({
            "confinement_path": str(CONFINEMENT_PATH),
            "read_paths": [str(p) for p in read_paths],
            "write_paths": [str(p) for p in [*write_paths, *([tmp_dir] if tmp_dir else [])]],
            "tmp_dir": str(tmp_dir) if tmp_dir else None,
            "allow_weak": self.allow_weak,
            "options": dict(self.options),
        })

    def command(self, argv: Sequence[str], *, python: str, run_dir: Path, tmp_dir: Path,
                read_paths: Sequence[Path] = ()) -> list[str]:
        """`argv` run confined: readable beneath `read_paths` (and the interpreter, the system libraries), writable
        beneath `run_dir` and `tmp_dir` (also its HOME and TMPDIR) only. The launcher runs under `python`, the
        interpreter of the training, so that interpreter's own files are the ones it may read."""
        spec = self.spec(read_paths=read_paths, write_paths=[run_dir], tmp_dir=tmp_dir)
        return [python, "-I", "-B", str(LAUNCHER_PATH), spec, "--", *argv]

    def check(self, python: str, env: Mapping[str, str]) -> dict[str, Any]:
        """Probe once per interpreter (in this process) what the sandbox holds here; TrainSandboxRefused when a
        protection is missing and weak sandboxes are not allowed. Returns the probe's answer (report, missing)."""
        spec = self.spec()
        with _probe_lock:
            answer = _probed.get((python, spec))
            if answer is None:
                answer = _probe(python, spec, env)
                _probed[(python, spec)] = answer
        if answer["missing"] and not self.allow_weak:
            raise TrainSandboxRefused(
                f"the training sandbox is incomplete on this machine (missing {'; '.join(answer['missing'])}): set "
                "BILEVEL_SANDBOX_ALLOW_WEAK=1 to train anyway, or BILEVEL_TRAIN_SANDBOX=never")
        return answer


def _probe(python: str, spec: str, env: Mapping[str, str]) -> dict[str, Any]:
    command = [python, "-I", "-B", str(LAUNCHER_PATH), spec, PROBE_FLAG]
    try:
        done = subprocess.run(command, env=dict(env), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TrainSandboxRefused(f"the training sandbox could not be probed with {python}: {error}") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("missing"), list):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainSandboxRefused(f"the training sandbox probe failed (exit {done.returncode}): {tail}")
    return answer
