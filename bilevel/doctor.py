"""`bilevel doctor`: checks of the LLM, the services and the paths, each with a state and an explanation."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Literal

from infra.settings import Settings


@dataclass
class Check:
    name: str
    state: Literal["ok", "warn", "fail"]
    details: str


def _paths(settings: Settings) -> list[Check]:
    free = shutil.disk_usage(settings.state_path.parent if settings.state_path.parent.exists() else ".").free
    return [
        Check("state directory", "ok", f"{settings.state_path} (MLflow, Prefect, S3 data, logs, runs)"),
        Check("cache directory", "ok", f"{settings.cache_dir} (local model, corpus)"),
        Check("disk", "ok" if free > 3e9 else "warn", f"{free / 1e9:.1f} GB free"),
    ]


def _llm(settings: Settings) -> list[Check]:
    from infra.resources import build_llm

    checks = []
    if settings.model.startswith("local/"):
        from infra.local_model import local_model_info

        info = local_model_info(settings)
        checks.append(Check("local model file", "ok" if info.get("present") else "fail",
                            f"{info.get('path')} ({info.get('size_mb', 0):.0f} MB)" if info.get("present")
                            else f"missing: run `bilevel setup` ({info.get('path')})"))
        if not info.get("present"):
            return checks
    try:
        llm = build_llm(settings)
        started = time.perf_counter()
        answer = llm.complete([{"role": "user", "content": "Reply with the word ok."}], purpose="doctor",
                              call_key="doctor", max_tokens=8)
        seconds = time.perf_counter() - started
        checks.append(Check("LLM answers", "ok", f"{settings.model}: {answer.text.strip()[:30]!r} in {seconds:.1f} s"))
    except Exception as error:  # doctor reports every failure instead of stopping at the first
        checks.append(Check("LLM answers", "fail", f"{settings.model}: {type(error).__name__}: {str(error)[:200]}"))
    return checks


def _tracking(settings: Settings) -> list[Check]:
    try:
        from infra.tracking import Tracker

        started = time.perf_counter()
        Tracker(settings.resolved_tracking_uri, settings.mlflow_artifact_root).client.search_experiments(max_results=1)
        return [Check("MLflow", "ok", f"{settings.resolved_tracking_uri} ({time.perf_counter() - started:.1f} s)")]
    except Exception as error:  # reported, not raised: doctor lists all problems
        return [Check("MLflow", "fail", f"{settings.resolved_tracking_uri}: {str(error)[:200]}")]


def _store(settings: Settings) -> list[Check]:
    try:
        from infra.services import service_status

        status = service_status(settings)
    except Exception as error:  # reported, not raised: doctor lists all problems
        return [Check("S3 store", "fail", str(error)[:200])]
    if status.get("mode") == "external":
        return [Check("S3 store", "ok", f"external endpoint {status['endpoint']}, bucket {status['bucket']}")]
    if not status.get("binary"):
        return [Check("S3 store", "fail", "the embedded server's `weed` binary is missing: run the setup again")]
    if status.get("running") and not status.get("answers"):
        return [Check("S3 store", "fail", f"embedded SeaweedFS (pid {status.get('pid')}) runs but does not answer on "
                                          f"{status['endpoint']}; see {status['log_file']}")]
    state = "running" if status.get("running") else "started on demand by the commands that need it"
    return [Check("S3 store", "ok", f"embedded SeaweedFS {status['endpoint']} ({state}), data in {status['data_dir']}")]


def _sandbox(settings: Settings) -> list[Check]:
    """Start a sandbox worker and show each of its protections on or off (DESIGN §5)."""
    try:
        from mechanisms.sandbox import sandbox_protections

        report = sandbox_protections()
    except Exception as error:  # reported, not raised: doctor lists all problems
        return [Check("mechanism sandbox", "fail", f"the sandbox worker does not start: {str(error)[:300]}")]
    return [sandbox_check(report, settings.sandbox_allow_weak)]


def train_sandbox_check(settings: Settings) -> Check:
    """The doctor line of the training sandbox (workloads/train_sandbox.py): what it holds here, and what follows."""
    import os
    import sys

    from workloads.subprocess_run import scrubbed_environment
    from workloads.train_sandbox import TrainSandbox, TrainSandboxRefused

    when = {"auto": "trainings of LLM-written code (edits = code)", "always": "every training", "never": "no training"}
    sandbox = TrainSandbox(mode=settings.train_sandbox, allow_weak=True)
    try:
        answer = sandbox.check(sys.executable, scrubbed_environment(os.environ))
    except TrainSandboxRefused as error:
        return Check("training sandbox", "warn" if settings.train_sandbox == "never" else "fail", str(error))
    report = answer["report"]
    held = (f"namespaces {'on' if report.get('network_namespace') else 'off'}, Landlock "
            f"{'ABI ' + str(report.get('landlock_abi')) if report.get('landlock') else 'off'}, seccomp "
            f"{'on' if report.get('seccomp') else 'off'}; confines {when[settings.train_sandbox]}")
    if not answer["missing"]:
        return Check("training sandbox", "ok", held)
    consequence = ("trainings run anyway (sandbox_allow_weak is set)" if settings.sandbox_allow_weak
                   else "confined trainings are refused; set BILEVEL_SANDBOX_ALLOW_WEAK=1 to run them anyway")
    return Check("training sandbox", "ok" if settings.train_sandbox == "never" else "warn",
                 f"{held}; missing: {'; '.join(answer['missing'])}; {consequence}")


def sandbox_check(report: dict, allow_weak: bool) -> Check:
    """The doctor line for a sandbox_protections() report: ok when complete, else what is missing and what follows."""
    from mechanisms.sandbox import ALLOW_WEAK_SETTING

    if not report["missing"]:
        return Check("mechanism sandbox", "ok", report["summary"])
    consequence = ("generated mechanisms run anyway (sandbox_allow_weak is set)" if allow_weak
                   else f"generated mechanisms are not activated; set {ALLOW_WEAK_SETTING} to run them anyway")
    return Check("mechanism sandbox", "warn", f"{report['summary']}; missing: {'; '.join(report['missing'])}; {consequence}")


def run_checks(settings: Settings) -> list[Check]:
    return [*_paths(settings), *_tracking(settings), *_store(settings), *_sandbox(settings), train_sandbox_check(settings),
            *_llm(settings)]
