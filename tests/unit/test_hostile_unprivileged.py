"""The hostile sandbox checks again, in a pytest process that is an unprivileged user from its first instruction.

tests/unit/test_sandbox_hostile.py and tests/unit/test_hostile_set.py run as root in CI, and reach the
ordinary-user path by having a root-started worker drop to uid 12345 after its imports. That is not
the same as a user who starts everything, so this module runs both files as uid 12345 from the start.

How that user gets an interpreter: the project's venv links to a pyenv build under /root (mode 0700),
which uid 12345 cannot even execute. So the test looks for a Python of the same minor version that the
user can run (the distribution's /usr/bin/python3.X first), makes a venv with it under a fresh
directory in /tmp (`--without-pip`), and copies into that venv's site-packages exactly the installed
packages the two test files import (found by importing them in a root subprocess: pytest, numpy,
pydantic, psutil and their dependencies; wheels built for CPython 3.X load in any 3.X.y), and next to
it the project's packages they import (mechanisms, search, workloads...) and the hostile tests. Everything is owned by root and read-only for the
user; only its HOME is its own. Same minor version, same packages: only the user differs.

It skips, with the reason, where this cannot work: not root (then the files above already run as an
ordinary user), or no interpreter of this minor version that uid 12345 can execute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

UID = 12345
ROOT = Path(__file__).resolve().parents[2]
HOSTILE_FILES = ("tests/unit/test_sandbox_hostile.py", "tests/unit/test_hostile_set.py", "tests/unit/test_train_sandbox.py")
COPIED = ("tests/__init__.py", "tests/conftest.py", "tests/unit/__init__.py", "tests/hostile", "pyproject.toml", *HOSTILE_FILES)
# Skips expected in an unprivileged run: the configurations that need a root-started worker.
EXPECTED_SKIPS = ("needs a worker started as root", "runs for real only as uid 12345")
MINOR = f"python{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="not root: the hostile tests already run as this ordinary user")


def _as_user(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, user=UID, group=UID, extra_groups=[], capture_output=True, text=True, **kwargs)


def _usable_interpreter() -> str | None:
    """A Python of this minor version that uid 12345 can execute (the distribution's first)."""
    candidates = [f"/usr/bin/{MINOR}", f"/usr/local/bin/{MINOR}", shutil.which(MINOR), os.path.realpath(sys.executable)]
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in dict.fromkeys(c for c in candidates if c and os.path.isfile(c)):
        try:
            probe = _as_user([candidate, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=60)
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == wanted:
            return candidate
    return None


def _imported_packages() -> list[Path]:
    """The top-level packages and modules the hostile test files import: installed ones (with their `.libs`
    folders) and the project's own (mechanisms, search, workloads...)."""
    script = (
        "import sys, site\n"
        "sys.path[:0] = [sys.argv[1]]\n"
        "import pytest, psutil, numpy\n"  # numpy: the sandbox worker imports it from the host's site-packages
        + "".join(f"import {name[:-3].replace('/', '.')}\n" for name in HOSTILE_FILES)
        + "roots = [p.rstrip('/') + '/' for p in site.getsitepackages()] + [sys.argv[1].rstrip('/') + '/']\n"
        "for module in list(sys.modules.values()):\n"
        "    path = getattr(module, '__file__', None) or ''\n"
        "    for root in roots:\n"
        "        if path.startswith(root):\n"
        "            print(root + path[len(root):].split('/')[0])\n"
    )
    found = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True, timeout=300, check=True)
    paths = {Path(line) for line in found.stdout.split() if line}
    paths |= {libs for path in list(paths) for libs in path.parent.glob(f"{path.name.split('.')[0]}.libs")}
    return sorted(p for p in paths if not p.name.startswith(("__editable__", "_distutils_hack")) and p.name != "tests")


@pytest.fixture(scope="module")
def user_environment():
    """A venv the user can run, with the packages and the project code the hostile tests need (see the docstring)."""
    python = _usable_interpreter()
    if python is None:
        pytest.skip(f"no {MINOR} that uid {UID} can execute (the venv's links into /root); install the distribution's {MINOR}")
    base = Path(tempfile.mkdtemp(prefix="bilevel-unprivileged-"))
    os.chmod(base, 0o755)
    try:
        subprocess.run([python, "-I", "-m", "venv", "--without-pip", str(base / "venv")], check=True, capture_output=True, timeout=300)
        site_packages = base / "venv" / "lib" / MINOR / "site-packages"
        for path in _imported_packages():
            target = (base / "repo" if path.parent == ROOT else site_packages) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
             if path.is_dir() else shutil.copy2(path, target))
        for name in COPIED:
            source, target = ROOT / name, base / "repo" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
             if source.is_dir() else shutil.copy2(source, target))
        home = base / "home"
        home.mkdir()
        os.chown(home, UID, UID)
        os.chmod(home, 0o700)
        yield {"python": str(base / "venv" / "bin" / "python"), "repo": str(base / "repo"), "home": str(home),
               "junit": str(home / "junit.xml")}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env(user_environment: dict) -> dict:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user_environment["home"], "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": user_environment["repo"]}


def test_the_user_runs_the_worker_with_every_protection(user_environment):
    probe = ("import os, json\nfrom mechanisms.sandbox import SandboxHost\n"
             "with SandboxHost() as host:\n"
             "    print(json.dumps([os.geteuid(), host.protections['uid'], host.missing_protections()]))\n")
    done = _as_user([user_environment["python"], "-c", probe], cwd=user_environment["home"],
                    env=_env(user_environment), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"[{UID}, {UID}, []]"


def test_the_hostile_tests_pass_as_an_unprivileged_user(user_environment):
    command = [user_environment["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not integration",
               f"--junitxml={user_environment['junit']}", "--rootdir", user_environment["repo"], *HOSTILE_FILES]
    done = _as_user(command, cwd=user_environment["repo"], env=_env(user_environment), timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    cases = ElementTree.parse(user_environment["junit"]).getroot().iter("testcase")
    ran, skipped = 0, []
    for case in cases:
        skip = case.find("skipped")
        if skip is None:
            ran += 1
        elif not any(reason in (skip.get("message") or "") for reason in EXPECTED_SKIPS):
            skipped.append(f"{case.get('name')}: {skip.get('message')}")
    assert skipped == [], "unexpected skips as an ordinary user"
    assert ran >= 40, done.stdout[-2000:]
