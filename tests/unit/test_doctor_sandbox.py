"""`bilevel doctor`'s "mechanism sandbox" check: each protection on or off, and what follows when one is missing."""

from __future__ import annotations

from bilevel.doctor import _sandbox, sandbox_check
from infra.settings import Settings
from mechanisms.sandbox import SandboxLimits, sandbox_protections


def test_the_check_lists_every_protection():
    (check,) = _sandbox(Settings())
    for label in ("user namespace", "PID namespace", "network namespace", "chroot", "no capabilities",
                  "no_new_privs", "Landlock", "seccomp", "rlimits"):
        assert label in check.details
    assert check.state == ("ok" if "missing" not in check.details else "warn")


def test_an_incomplete_sandbox_is_a_warning_naming_what_is_missing_and_the_setting():
    report = sandbox_protections(SandboxLimits(isolate=False))
    check = sandbox_check(report, allow_weak=False)
    assert check.state == "warn"
    assert "user namespace off" in check.details and "missing: user namespace" in check.details
    assert "not activated; set BILEVEL_SANDBOX_ALLOW_WEAK=1" in check.details
    assert "run anyway" in sandbox_check(report, allow_weak=True).details


def test_the_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("BILEVEL_SANDBOX_ALLOW_WEAK", "1")
    assert Settings().sandbox_allow_weak is True
    monkeypatch.delenv("BILEVEL_SANDBOX_ALLOW_WEAK")
    assert Settings().sandbox_allow_weak is False
