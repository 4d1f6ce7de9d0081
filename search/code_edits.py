"""Free-form edits (`edits = code`): the LLM's SEARCH/REPLACE blocks against the editable script, parsed within
bounds, applied (each SEARCH must match exactly once), checked to parse, refused when they name a read-only file,
and keyed by a whitespace- and comment-insensitive form so that a repeated edit is found like a repeated config.

The answer format (aider / OpenEvolve style; the file line is optional, the hypothesis line is asked for):

    HYPOTHESIS: a larger init scale trains faster
    train.py
    <<<<<<< SEARCH
    exact lines of the current script
    =======
    their replacement
    >>>>>>> REPLACE

Every refusal is a `CodeEditError` with one line the LLM can act on (it goes back to it like any invalid answer)."""

from __future__ import annotations

import ast
import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from search.pyast import parse_python

SOURCE_KEY = "source"  # the config key naming the script a configuration edits (a source key, below)
SOURCE_KEY_CHARS = 16  # hex digits of sha256: a run holds hundreds of sources, not billions
MAX_ANSWER_CHARS = 24_000
MAX_BLOCKS = 8
MAX_BLOCK_CHARS = 6_000  # SEARCH or REPLACE text of one block
MAX_SOURCE_CHARS = 200_000  # the edited script (the trace keeps every edited source)
MAX_HYPOTHESIS_CHARS = 200
SEARCH_MARK = "<<<<<<< SEARCH"
DIVIDER = "======="
REPLACE_MARK = ">>>>>>> REPLACE"
_FILE_LINE = re.compile(r"[\w./\\-]+\.\w+")
_HYPOTHESIS = re.compile(r"^\s*(?:hypothesis)\s*:\s*(.*)$", re.IGNORECASE)


class CodeEditError(ValueError):
    """An answer whose edit may not be trained; one line, written for the LLM that proposed it."""


class CodeEdit(BaseModel):
    """One applied edit: the source it edited (by key), the edited source and its keys, and the hypothesis."""

    model_config = ConfigDict(frozen=True)

    base: str  # source key of the script the blocks were applied to
    key: str  # source key of the edited script
    source: str
    program_key: str  # the edited script without comments and formatting
    diff_key: str  # the change itself without comments, formatting and position
    blocks: int
    fixed_after: str = ""  # when this is a fix of a crashed edit: the crashed version's key


class Block(BaseModel):
    model_config = ConfigDict(frozen=True)

    search: str
    replace: str
    file: str | None = None


def source_key(source: str) -> str:
    """The content address of a script (short sha256)."""
    return hashlib.sha256(source.encode()).hexdigest()[:SOURCE_KEY_CHARS]


def normal_form(source: str) -> str:
    """The script without comments, blank lines or formatting (`ast.unparse`); ValueError when it does not parse."""
    try:
        return ast.unparse(parse_python(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ValueError(f"does not parse: {error}") from None


def program_key(source: str) -> str:
    return hashlib.sha256(normal_form(source).encode()).hexdigest()[:SOURCE_KEY_CHARS]


def normalised_diff(before: str, after: str) -> str:
    """The changed lines of the normal forms, without line numbers or context: the same edit made anywhere, with
    any formatting or comments, gives the same text."""
    lines = difflib.unified_diff(normal_form(before).splitlines(), normal_form(after).splitlines(), n=0, lineterm="")
    return "\n".join(line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---")))


def diff_key(before: str, after: str) -> str:
    return hashlib.sha256(normalised_diff(before, after).encode()).hexdigest()[:SOURCE_KEY_CHARS]


def parse_answer(text: str) -> tuple[list[Block], str]:
    """The blocks and the hypothesis of an answer; CodeEditError for a malformed or oversized one."""
    if not isinstance(text, str) or not text.strip():
        raise CodeEditError("the answer is empty; answer with SEARCH/REPLACE blocks")
    if len(text) > MAX_ANSWER_CHARS:
        raise CodeEditError(f"the answer has {len(text)} characters, more than {MAX_ANSWER_CHARS}; make a smaller edit")
    blocks: list[Block] = []
    hypothesis = ""
    lines = text.replace("\r\n", "\n").split("\n")
    outside: list[str] = []  # lines since the last block (the file line is the last of them)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != SEARCH_MARK:
            match = _HYPOTHESIS.match(line)
            if match and not hypothesis:
                hypothesis = match.group(1).strip()
            elif line.strip() and not line.strip().startswith("```"):
                outside.append(line.strip())
            i += 1
            continue
        number = len(blocks) + 1
        if number > MAX_BLOCKS:
            raise CodeEditError(f"more than {MAX_BLOCKS} SEARCH/REPLACE blocks; make a smaller edit")
        file = outside[-1] if outside and _FILE_LINE.fullmatch(outside[-1]) else None
        outside = []
        search, i = _section(lines, i + 1, DIVIDER, number, "=======")
        replace, i = _section(lines, i, REPLACE_MARK, number, ">>>>>>> REPLACE")
        for part, label in ((search, "SEARCH"), (replace, "REPLACE")):
            if len(part) > MAX_BLOCK_CHARS:
                raise CodeEditError(f"block {number}'s {label} text has {len(part)} characters, more than "
                                    f"{MAX_BLOCK_CHARS}; split it or make a smaller edit")
        if not search.strip():
            raise CodeEditError(f"block {number} has an empty SEARCH part; copy the exact lines it replaces")
        blocks.append(Block(search=search, replace=replace, file=file))
    if not blocks:
        raise CodeEditError(f"no SEARCH/REPLACE block found; write {SEARCH_MARK}, the exact current lines, {DIVIDER}, "
                            f"the new lines, {REPLACE_MARK}")
    return blocks, hypothesis[:MAX_HYPOTHESIS_CHARS]


def _section(lines: list[str], start: int, end_mark: str, number: int, shown: str) -> tuple[str, int]:
    """The text from `start` up to the line `end_mark` (as whole lines, each ending in a newline), and the index
    after that line."""
    for j in range(start, len(lines)):
        stripped = lines[j].strip()
        if stripped == end_mark:
            body = lines[start:j]
            return ("\n".join(body) + "\n") if body else "", j + 1
        if stripped in (SEARCH_MARK, DIVIDER, REPLACE_MARK):
            break
    raise CodeEditError(f"block {number} is not closed: a {shown!r} line is missing or out of place")


def apply_blocks(source: str, blocks: list[Block], *, script_name: str, read_only: Iterable[str] = ()) -> str:
    """`source` with each block applied in order; CodeEditError when a block names another file (the read-only
    evaluation files above all), or its SEARCH lines do not occur exactly once (as whole lines)."""
    protected = sorted(set(read_only))
    text = source if source.endswith("\n") else source + "\n"
    for number, block in enumerate(blocks, start=1):
        if block.file is not None and block.file.replace("\\", "/").rsplit("/", 1)[-1] != script_name:
            named = block.file.replace("\\", "/").rsplit("/", 1)[-1]
            why = "is read-only (it measures the result)" if named in protected else "is not editable"
            raise CodeEditError(f"block {number} edits {named}, which {why}; only {script_name} may be edited")
        padded, needle = "\n" + text, "\n" + block.search  # whole lines only: `x = 1` never matches `max = 1`
        count = padded.count(needle)
        if count == 0:
            first = next((line.strip() for line in block.search.splitlines() if line.strip()), "")[:80]
            raise CodeEditError(f"block {number}'s SEARCH text does not occur in {script_name} (first line {first!r}); "
                                "copy the lines exactly as shown, with their indentation")
        if count > 1:
            raise CodeEditError(f"block {number}'s SEARCH text occurs {count} times in {script_name}; include more "
                                "surrounding lines so that it matches exactly once")
        text = padded.replace(needle, "\n" + block.replace, 1)[1:]
    return text


def make_edit(
    base: str,
    answer: str,
    *,
    script_name: str,
    read_only: Iterable[str] = (),
    tried: Mapping[str, str] | None = None,
    tried_diffs: Mapping[str, str] | None = None,
) -> tuple[CodeEdit, str]:
    """The edit an answer makes to `base`, and its hypothesis. Refused (CodeEditError) when the answer is malformed
    or out of bounds, edits another file, does not apply, changes nothing, does not parse, is larger than
    MAX_SOURCE_CHARS, gives a program already in `tried` (program key -> where) or repeats an edit in `tried_diffs`
    (diff key -> where)."""
    blocks, hypothesis = parse_answer(answer)
    edited = apply_blocks(base, blocks, script_name=script_name, read_only=read_only)
    return finish_edit(base, edited, blocks=len(blocks), script_name=script_name, tried=tried,
                       tried_diffs=tried_diffs), hypothesis


def finish_edit(
    base: str,
    edited: str,
    *,
    blocks: int,
    script_name: str,
    tried: Mapping[str, str] | None = None,
    tried_diffs: Mapping[str, str] | None = None,
) -> CodeEdit:
    """The checks of `make_edit` after the blocks are applied (shared with a fix, which edits a crashed version)."""
    if len(edited) > MAX_SOURCE_CHARS:
        raise CodeEditError(f"the edited {script_name} has {len(edited)} characters, more than {MAX_SOURCE_CHARS}")
    try:
        normal = normal_form(edited)
    except ValueError:
        raise CodeEditError(f"the edited {script_name} {_syntax_error(edited)}; fix the edit so that it is valid "
                            "Python") from None
    if normal == normal_form(base):
        raise CodeEditError("the edit changes only comments or formatting; change what the script does")
    key = hashlib.sha256(normal.encode()).hexdigest()[:SOURCE_KEY_CHARS]
    if tried and key in tried:
        raise CodeEditError(f"the edited script is the same program as {tried[key]}, already run; propose a "
                            "different change")
    change = diff_key(base, edited)
    if tried_diffs and change in tried_diffs:
        raise CodeEditError(f"the same change (ignoring comments and formatting) was already tried in "
                            f"{tried_diffs[change]}; propose a different change")
    return CodeEdit(base=source_key(base), key=source_key(edited), source=edited, program_key=key, diff_key=change,
                    blocks=blocks)


def _syntax_error(source: str) -> str:
    try:
        parse_python(source)
    except SyntaxError as error:
        return f"does not parse: line {error.lineno}: {error.msg}"
    except (ValueError, RecursionError, MemoryError) as error:
        return f"does not parse: {type(error).__name__}"
    return "does not parse"


def shown_source(source: str, max_chars: int) -> str:
    """The script as shown in a prompt: as it is (the SEARCH text is copied from it), cut at a line boundary past
    `max_chars` with a note saying so."""
    if len(source) <= max_chars:
        return source
    cut = source.rfind("\n", 0, max_chars) + 1 or max_chars
    return source[:cut] + f"# ... ({len(source) - cut} more characters not shown: edit only the part above)\n"
