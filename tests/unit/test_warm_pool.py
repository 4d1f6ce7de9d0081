"""Warm runs (a fresh child forked from a warm worker per run) against cold ones: the same environment, working
directory, argv, exit codes, tracebacks, timeout and log capture; no state carried from one run to the next; a
crash or timeout ends only its own child; a line watch stops a run; a worker that cannot start means a cold run."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from workloads import warm_pool
from workloads.subprocess_run import run_script, run_warm
from workloads.warm_pool import WarmSpec, WarmStartError

SPEC = WarmSpec(modules=("json", "decimal"))
ENV = {"OWNER_PGID": str(os.getpgid(0)), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
       "BILEVEL_SEED": "5"}

PROBE = textwrap.dedent('''\
    import json, os, sys
    import decimal
    state = {"cwd": os.getcwd(), "argv": sys.argv, "path0": sys.path[0], "file": __file__, "name": __name__,
             "env": dict(os.environ), "leak": getattr(decimal, "leaked", None), "stdin": sys.stdin.read(),
             # in a process group apart from the owner's (a cold run's group is led by its supervisor)
             "own_group": os.getpgid(0) != int(os.environ["OWNER_PGID"])}
    decimal.leaked = "from an earlier run"  # a preloaded module changed: the next run must not see it
    print(json.dumps(state))
''')


@pytest.fixture(autouse=True)
def _fresh_pool():
    yield
    warm_pool.close_all()


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def warm(script: Path, *, timeout_s: float = 30, env: dict[str, str] | None = None, spec: WarmSpec = SPEC, **kw):
    return run_warm(Path(script.name), python=sys.executable, spec=spec, cwd=script.parent, env=env or ENV,
                    timeout_s=timeout_s, log_path=script.parent / "out.log", **kw)


def cold(script: Path, *, timeout_s: float = 30, env: dict[str, str] | None = None, **kw):
    return run_script([sys.executable, script.name], cwd=script.parent, env=env or ENV, timeout_s=timeout_s,
                      log_path=script.parent / "cold.log", **kw)


def test_a_warm_run_sees_what_a_cold_run_sees(tmp_path: Path) -> None:
    script = write(tmp_path / "run", "probe.py", PROBE)
    seen_cold = json.loads(cold(script).tail)
    result = warm(script)
    assert result.returncode == 0 and not result.timed_out
    seen_warm = json.loads(result.tail)
    assert seen_warm == seen_cold  # environment (exactly), cwd, argv, sys.path[0], __file__, stdin, own group
    assert seen_warm["env"]["BILEVEL_SEED"] == "5" and seen_warm["own_group"] and seen_warm["leak"] is None
    assert json.loads((tmp_path / "run" / "out.log").read_text()) == seen_warm  # the log holds the output too


def test_no_state_leaks_from_one_warm_run_to_the_next(tmp_path: Path) -> None:
    script = write(tmp_path / "run", "probe.py", PROBE)
    first, second = warm(script), warm(script, env={**ENV, "BILEVEL_SEED": "6"})
    assert json.loads(first.tail)["leak"] is None and json.loads(second.tail)["leak"] is None
    assert json.loads(second.tail)["env"]["BILEVEL_SEED"] == "6"


def test_exit_codes_and_tracebacks_match_a_cold_run(tmp_path: Path) -> None:
    cases = {
        "ok.py": "print('fine')\n",
        "code.py": "import sys\nprint('before')\nsys.exit(3)\n",
        "message.py": "import sys\nsys.exit('a message')\n",
        "raises.py": "def f():\n    raise ValueError('boom')\nprint('out first')\nf()\n",
    }
    for name, text in cases.items():
        script = write(tmp_path / name.removesuffix(".py"), name, text)
        expected, got = cold(script), warm(script)
        assert got.returncode == expected.returncode, name
        assert got.tail == expected.tail, name
    assert "ValueError: boom" in got.tail and 'File "' + str(tmp_path / "raises" / "raises.py") in got.tail
    assert "zygote" not in got.tail


def gone_or_zombie(pid: int, patience_s: float = 30.0) -> bool:
    """Whether `pid` is dead. A SIGKILLed process can still read as running until the kernel has scheduled its
    exit (under load, for a while), so this waits for it, up to `patience_s`, rather than looking once."""
    try:
        process = psutil.Process(pid)
        process.wait(timeout=patience_s)  # polls a process that is not our child
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True


def test_a_timeout_kills_the_child_and_its_children_but_not_the_warm_worker(tmp_path: Path) -> None:
    script = write(tmp_path / "slow", "slow.py", textwrap.dedent('''\
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("grandchild", child.pid, flush=True)
        time.sleep(600)
    '''))
    result = warm(script, timeout_s=3)
    assert result.timed_out and result.returncode is None
    grandchild = int(result.tail.split()[1])
    assert gone_or_zombie(grandchild), f"the grandchild {grandchild} still runs after the timeout"
    after = warm(write(tmp_path / "next", "ok.py", "print('still here')\n"))
    assert after.returncode == 0 and after.tail == "still here\n"


def test_a_crash_of_one_run_does_not_stop_a_concurrent_one(tmp_path: Path) -> None:
    crash = write(tmp_path / "crash", "crash.py", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    slow = write(tmp_path / "slow", "slow.py", "import time\ntime.sleep(1.5)\nprint('done')\n")
    results: dict[str, object] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s.name, warm(s))) for s in (slow, crash)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["crash.py"].returncode == -9  # type: ignore[attr-defined]
    assert results["slow.py"].returncode == 0 and results["slow.py"].tail == "done\n"  # type: ignore[attr-defined]


def test_runs_are_forked_from_one_long_lived_worker(tmp_path: Path) -> None:
    script = write(tmp_path / "run", "parent.py", "import os\nprint(os.getppid())\n")
    parents = {warm(script).tail.strip() for _ in range(3)}
    assert len(parents) == 1 and parents != {str(os.getpid())}
    assert psutil.Process(int(parents.pop())).parent().pid == os.getpid()  # the worker is this process's child


def test_a_watch_stops_the_run_and_says_why(tmp_path: Path) -> None:
    script = write(tmp_path / "run", "long.py", textwrap.dedent('''\
        import time
        for i in range(1000):
            print(f"tick {i}", flush=True)
            time.sleep(0.05)
    '''))
    seen: list[str] = []

    def watch(line: str) -> str | None:
        seen.append(line)
        return "enough" if line == "tick 3" else None

    for runner in (warm, cold):
        seen.clear()
        result = runner(script, watch=watch)
        assert result.stop_reason == "enough" and result.stopped and not result.timed_out
        assert seen[:4] == ["tick 0", "tick 1", "tick 2", "tick 3"] and len(seen) == 4
        assert "tick 999" not in result.tail


def test_a_worker_that_cannot_start_is_an_error_the_caller_can_fall_back_on(tmp_path: Path) -> None:
    script = write(tmp_path / "run", "ok.py", "print('x')\n")
    with pytest.raises(WarmStartError, match="no_such_module"):
        warm(script, spec=WarmSpec(modules=("no_such_module_here",)))
    with pytest.raises(WarmStartError, match="no_such_module"):  # remembered: not retried on every run
        warm(script, spec=WarmSpec(modules=("no_such_module_here",)))


def test_a_script_workload_falls_back_to_a_cold_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.script import ScriptWorkload

    script = write(tmp_path / "src", "fit.py", textwrap.dedent('''\
        # --- hyperparameters ---
        LR = 0.1  # float [0.01, 1.0]: rate
        # --- end hyperparameters ---
        print("---")
        print(f"loss: {LR * 2}")
    '''))
    work = ScriptWorkload(script, metric="loss")
    monkeypatch.setattr(work, "warm", True)
    monkeypatch.setattr(work, "warm_spec", lambda: WarmSpec(modules=("no_such_module_here",)))
    outcome = work.run(work.editable_source(), work.default_budget(), 0, tmp_path / "r", timeout_s=30)
    assert outcome.ok and outcome.value == pytest.approx(0.2)


def test_when_the_owner_dies_the_worker_and_its_runs_die_too(tmp_path: Path) -> None:
    sleeper = write(tmp_path / "run", "sleep.py", "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n")
    owner = write(tmp_path, "owner.py", textwrap.dedent(f'''\
        import os, signal, sys, threading, time
        from pathlib import Path
        from workloads.subprocess_run import run_warm
        from workloads.warm_pool import WarmSpec, _zygotes
        seen = []
        watch = lambda line: seen.append(line)
        threading.Thread(target=run_warm, args=(Path("sleep.py"),), daemon=True, kwargs=dict(
            python=sys.executable, spec=WarmSpec(), cwd=Path({str(sleeper.parent)!r}), env={{"PATH": "/usr/bin:/bin"}},
            timeout_s=600, log_path=Path({str(tmp_path / "owner.log")!r}), watch=watch)).start()
        while not seen:
            time.sleep(0.05)
        print(next(iter(_zygotes.values())).process.pid, seen[0], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    '''))
    import subprocess

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(owner)], env={**ENV, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2  # the worker and the run it forked
    procs = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
