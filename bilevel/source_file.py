"""Read a user's mechanism file for `bilevel mechanisms validate`: a regular file named without a symbolic link,
bounded, strict UTF-8 and parseable Python. Every refusal is one line that quotes nothing of the file's content
(the file may be something its reader may read but the user may not: a root-only file, for a command run as root)."""

from __future__ import annotations

import ast
import codecs
import errno
import os
import stat
from pathlib import Path

MAX_MECHANISM_FILE_BYTES = 256 * 1024  # what is read at most; the policy's own size rule is far smaller
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


class SourceFileError(ValueError):
    """The file is not a mechanism source this command reads; the message names the file and the problem only."""


def read_mechanism_file(path: Path, max_bytes: int = MAX_MECHANISM_FILE_BYTES) -> str:
    """The text of `path`, or SourceFileError (one line).

    A symbolic link as the last component is refused rather than followed: checking where it points and then
    opening it would race with a change of the link, and O_NOFOLLOW makes the refusal part of the open itself.
    """
    fd = _open(path)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SourceFileError(f"mechanism file {path} is a directory: name a .py file in it")
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise SourceFileError(f"mechanism file {path} is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise SourceFileError(f"mechanism file {path} is larger than {max_bytes} bytes")
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew after fstat
        raise SourceFileError(f"mechanism file {path} is larger than {max_bytes} bytes")
    return _checked_source(path, data)


def _open(path: Path) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise SourceFileError(f"mechanism file {path} not found") from None
    except OSError as error:
        if error.errno == errno.ELOOP and os.path.islink(path):
            raise SourceFileError(f"mechanism file {path} is a symbolic link: name the file itself (links are refused, "
                                  "so a link cannot make this command read a file you could not)") from None
        if error.errno in (errno.EACCES, errno.EPERM):
            raise SourceFileError(f"mechanism file {path} cannot be read: permission denied") from None
        raise SourceFileError(f"mechanism file {path} cannot be opened: {error.strerror or type(error).__name__}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _checked_source(path: Path, data: bytes) -> str:
    """Strict UTF-8 (a leading byte-order mark allowed, as Python allows it), no NUL, and parseable."""
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        offset = error.start + len(data) - len(body)
        raise SourceFileError(f"mechanism file {path} is not UTF-8 text: the byte at offset {offset} cannot be "
                              "decoded (save the file as UTF-8)") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise SourceFileError(f"mechanism file {path} contains a NUL byte at offset {nul}: it is not Python source")
    try:
        ast.parse(text, filename=str(path))
    except SyntaxError as error:
        # Python's message may quote the file (an invalid character, a bracket, a name): only a quote-free one is kept.
        reason = error.msg if error.msg and not any(q in error.msg for q in "'\"`") else "invalid syntax"
        raise SourceFileError(f"mechanism file {path} is not valid Python: {reason} at line {error.lineno or 0}, "
                              f"column {error.offset or 0}") from None
    except (RecursionError, MemoryError):
        raise SourceFileError(f"mechanism file {path} is not valid Python: it cannot be parsed (nested too deeply)") from None
    return text
