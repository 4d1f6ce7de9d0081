"""Provision the tinygpt corpus once: the .txt docs of the Django 5.1.4 sdist (BSD-3), split and written atomically.

Only the package registry is used (`pip download` of a pinned, hash-checked sdist); a user without
network passes the sdist file instead. Run `python -m workloads.tinygpt.data [--sdist PATH]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

CORPUS_NAME = "tinygpt-django-5.1.4"
SDIST_REQUIREMENT = "django==5.1.4"
SDIST_SHA256 = "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a"
DOC_SUFFIX = ".txt"
VALIDATION_EVERY, VALIDATION_REMAINDER = 10, 5  # file i goes to validation when i % 10 == 5
SEPARATOR = b"\0"  # between files: a byte that never occurs in the text, so the model sees document boundaries
# Measured from the pinned sdist; a mismatch means the split logic or the input changed.
EXPECTED_SHA256 = {
    "train.bin": "9402f44b9d045974a9aefedc07957e0d621fb114bf857b0cad7aa146fba2fc68",
    "val.bin": "224184b5733bac6789e5a4bf18b68b4465fac59340a3fbd39b21b603d47efbef",
}
PIP_TIMEOUT_S = 600
MANIFEST = "manifest.json"


class CorpusError(RuntimeError):
    """The corpus could not be provisioned; the message says what to do."""


def corpus_dir(cache_dir: Path) -> Path:
    return Path(cache_dir).expanduser() / "data" / CORPUS_NAME


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def doc_files(archive: tarfile.TarFile) -> list[tuple[str, bytes]]:
    """(path below the sdist root, content) of every regular docs/**/*.txt file, sorted by path."""
    found = []
    for member in archive.getmembers():
        parts = member.name.split("/", 1)
        if len(parts) != 2 or not member.isfile():
            continue
        relative = parts[1]
        if relative.startswith("docs/") and relative.endswith(DOC_SUFFIX):
            handle = archive.extractfile(member)
            if handle is None:  # pragma: no cover - isfile() members always have content
                raise CorpusError(f"cannot read {member.name} from the sdist")
            found.append((relative, handle.read()))
    return sorted(found)


def split_documents(documents: Iterable[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """(train, val): sorted documents, every 10th (i % 10 == 5) to validation, each split joined by NUL."""
    train, val = [], []
    for index, (_path, content) in enumerate(sorted(documents)):
        (val if index % VALIDATION_EVERY == VALIDATION_REMAINDER else train).append(content)
    return SEPARATOR.join(train), SEPARATOR.join(val)


def download_sdist(target: Path) -> Path:
    """The Django sdist, fetched from the package registry by pip; raises CorpusError with the pip output."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST_REQUIREMENT, "-d", str(target)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise CorpusError(f"pip download of {SDIST_REQUIREMENT} took over {PIP_TIMEOUT_S} s; check network access to PyPI") from None
    archives = sorted(target.glob("*.tar.gz"))
    if result.returncode != 0 or len(archives) != 1:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise CorpusError(
            f"could not download {SDIST_REQUIREMENT} with pip (exit {result.returncode}). Without network access, "
            f"fetch Django-5.1.4.tar.gz (sha256 {SDIST_SHA256}) elsewhere and run "
            f"`python -m workloads.tinygpt.data --sdist PATH`. pip said:\n{tail}"
        )
    return archives[0]


def build_corpus(sdist: Path) -> dict[str, bytes]:
    """The corpus files from the sdist, after checking the sdist's hash."""
    digest = sha256_file(sdist)
    if digest != SDIST_SHA256:
        raise CorpusError(f"{sdist} has sha256 {digest}, expected {SDIST_SHA256} (Django 5.1.4 sdist)")
    with tarfile.open(sdist, "r:gz") as archive:
        documents = doc_files(archive)
    if not documents:
        raise CorpusError(f"{sdist} holds no docs/**/*.txt files")
    train, val = split_documents(documents)
    manifest = {
        "corpus": CORPUS_NAME,
        "source": f"{SDIST_REQUIREMENT} sdist docs/**/*.txt (BSD-3-Clause), sha256 {SDIST_SHA256}",
        "documents": len(documents),
        "split": f"sorted paths; file i to val when i % {VALIDATION_EVERY} == {VALIDATION_REMAINDER}; joined by NUL",
        "files": {name: {"bytes": len(data), "sha256": sha256_bytes(data)} for name, data in (("train.bin", train), ("val.bin", val))},
    }
    return {"train.bin": train, "val.bin": val, MANIFEST: (json.dumps(manifest, indent=2) + "\n").encode()}


def check_expected(files: dict[str, bytes]) -> None:
    for name, expected in EXPECTED_SHA256.items():
        actual = sha256_bytes(files[name])
        if actual != expected:
            raise CorpusError(f"{name} has sha256 {actual}, expected {expected}: the corpus build is not reproducible")


def is_complete(directory: Path) -> bool:
    """True when the folder holds both splits with the pinned hashes."""
    return all((directory / name).is_file() and sha256_file(directory / name) == expected for name, expected in EXPECTED_SHA256.items())


def prepare_corpus(cache_dir: Path, sdist: Path | None = None) -> Path:
    """The corpus folder under `cache_dir`, built once (temp folder + rename, so readers never see half a corpus)."""
    final = corpus_dir(cache_dir)
    if final.is_dir():
        if is_complete(final):
            return final
        raise CorpusError(f"{final} exists but does not match the pinned hashes; delete it and run again")
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{CORPUS_NAME}-") as work:
        work_dir = Path(work)
        archive = sdist if sdist is not None else download_sdist(work_dir / "download")
        files = build_corpus(Path(archive))
        check_expected(files)
        staged = work_dir / "corpus"
        staged.mkdir()
        for name, data in files.items():
            (staged / name).write_bytes(data)
        try:
            staged.rename(final)
        except OSError:
            # Another process finished first: use its corpus if it is the same one.
            if not is_complete(final):
                raise
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, help="default: the cache_dir setting")
    parser.add_argument("--sdist", type=Path, help="a local Django-5.1.4.tar.gz instead of downloading it")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir
    if cache_dir is None:
        from infra.settings import load_settings

        cache_dir = load_settings().cache_dir
    try:
        path = prepare_corpus(cache_dir, args.sdist)
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    manifest = json.loads((path / MANIFEST).read_text())
    sizes = ", ".join(f"{name} {info['bytes']:,} bytes" for name, info in manifest["files"].items())
    print(f"{path}: {manifest['documents']} documents; {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

