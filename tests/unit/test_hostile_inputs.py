"""Hostile numbers and text from every untrusted source (LLM answers, sandbox answers, a user script's metrics)
are bounded or cleaned at the parser (search/safe_json), so none can abort the host later: a deterministic fuzz
over a fixed corpus pushes what the parser lets through into every sink (console, MLflow, JSON files, the HTML
report, the store's metadata). Issue 23, finding 3."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

from search.safe_json import MAX_INT, clean_text, loads_bounded

# Lone and paired surrogates, NUL, C0 and C1 controls, terminal escapes, bidirectional overrides and isolates,
# carriage returns, a BOM, a line separator, and text that must come through unchanged.
HOSTILE_TEXT = [
    "\ud800", "\udfff", "tail\ud83d", "\ude00head", "\ud83d\ude00 a pair", "nul\x00byte", "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07", "bell\x07back\x08space", "c1\x85\x9b31m\x9d", "rtl\u202eevil\u202c", "iso\u2066x\u2069\u200f",
    "cr\roverwrite", "crlf\r\nline", "del\x7f", "tab\tnewline\n", "\ufeffbom", "line\u2028sep", "plain ascii", "",
    "日本語 ünïcödé", "<script>alert(1)</script>", '"quote\\', "{}[]", "\x00" * 50,
]
UNSAFE = {chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F,
                           *range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xD800, 0xE000)]}
# JSON number literals no consumer can take: float() of them overflows, or they leave 64 bits, or are infinite.
HOSTILE_NUMBERS = ["9" * 300, "-" + "9" * 300, "1" + "0" * 4400, "1e309", "-1e309", "1e400", "1E99999", "1e301",
                   str(MAX_INT + 1), str(-MAX_INT - 1), "0." + "0" * 200 + "1"]
FINE_NUMBERS = ["0", "-0", "-0.0", "1e300", "-1e300", "1e-400", str(MAX_INT), str(-MAX_INT), "3.5", "1e15"]


def assert_clean(text: str) -> None:
    assert not UNSAFE & set(text), ascii(text)
    text.encode("utf-8")  # no surrogate left: encodable everywhere


def strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings_in(v))]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


def fuzz_strings(count: int = 400, seed: int = 23) -> list[str]:
    """Deterministic random strings over an alphabet weighted towards the characters that break things."""
    alphabet = [*UNSAFE, *"\n\t\r ab{}\"\\:", "\ud83d\ude00", "é", "\u2028", "\ufffd"]
    rng = random.Random(seed)
    return [(rng.choice(HOSTILE_TEXT) if rng.random() < 0.2 else "")
            + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(count)]


# -- the parser: numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", HOSTILE_NUMBERS)
@pytest.mark.parametrize("template", ["{}", "[{}]", '{{"changes": {{"lr": {}}}}}', '[[[{{"a": [1, {}]}}]]]'])
def test_numbers_no_consumer_can_take_are_refused_with_one_line(literal: str, template: str) -> None:
    with pytest.raises(ValueError) as caught:
        loads_bounded(template.format(literal), 100_000, 10)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 160 and "the JSON has" in message


@pytest.mark.parametrize("literal", FINE_NUMBERS)
def test_numbers_in_range_parse_and_every_consumer_can_use_them(literal: str) -> None:
    number = loads_bounded(f"[{literal}]", 1000, 5)[0]
    assert number == json.loads(literal)
    assert math.isfinite(float(number)) and math.isfinite(float(number) * 1e6)


def test_nan_and_infinity_stay_refused_unless_the_caller_takes_them() -> None:
    with pytest.raises(ValueError, match="NaN"):
        loads_bounded("[NaN]", 100, 5)
    values = loads_bounded("[NaN, Infinity, -Infinity]", 100, 5, allow_constants=True)
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


# -- the parser and clean_text: text -----------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE_TEXT + fuzz_strings())
def test_clean_text_leaves_only_printable_encodable_text(text: str) -> None:
    cleaned = clean_text(text)
    assert_clean(cleaned.replace("\n", "").replace("\t", ""))
    assert clean_text(cleaned) == cleaned
    if not UNSAFE & set(text):
        assert cleaned == text  # safe text is never touched
    assert "\n" not in clean_text(text, keep="") and "\t" not in clean_text(text, keep="")


def test_surrogate_pairs_are_joined_and_crlf_becomes_lf() -> None:
    assert clean_text("\ud83d\ude00\r\n") == "\U0001f600\n"
    assert clean_text("a\ud800b") == "a\ufffdb"


@pytest.mark.parametrize("text", HOSTILE_TEXT + fuzz_strings(100, seed=5))
def test_every_string_the_parser_returns_is_clean_escaped_or_raw(text: str) -> None:
    document = {"name": text, text: [text, {"k": text}], "n": 1}
    for encoded in (json.dumps(document), json.dumps(document, ensure_ascii=False)):
        try:
            value = loads_bounded(encoded, 100_000, 10)
        except ValueError as error:  # two keys that differ only in unprintable characters
            assert "repeats the key" in str(error)
            continue
        for found in strings_in(value):
            assert_clean(found.replace("\n", "").replace("\t", ""))


def test_keys_that_collide_once_cleaned_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats the key"):
        loads_bounded('{"a\\u0000": 1, "a\\u0001": 2}', 100, 5)


# -- the paths by which they arrive -------------------------------------------------------------------------


def test_an_llm_proposal_with_a_300_digit_integer_is_refused_not_raised() -> None:
    from search.proposal import ProposalError, parse_proposal
    from search.space import SearchSpace
    from tests.unit.script_fixture import SCRIPT
    from tests.unit.traces import build_trace, request_for
    from workloads.hyperblock import parse_block

    request = request_for(build_trace([]), SearchSpace(params=parse_block(SCRIPT).params))
    for literal in HOSTILE_NUMBERS:
        text = '{"changes": {"MATRIX_LR": %s}, "hypothesis": "\\ud800 \\u001b[2J"}' % literal
        with pytest.raises(ProposalError, match="the JSON has"):  # a ValueError: converse re-asks with it
            parse_proposal(text, request.check, max_changes=3)
    candidate = parse_proposal('{"changes": {"DEPTH": 6}, "hypothesis": "deep\\ud800er \\u202e\\u001b[2J"}',
                               request.check, max_changes=3)
    assert candidate.hypothesis == "deep\ufffder \ufffd\ufffd[2J"


def test_the_llm_clients_raw_answers_arrive_clean(tmp_path: Path) -> None:
    """What the LLM answered goes to the transcript, the re-ask, MLflow traces and the console as it is."""
    from infra.llm import LLMClient
    from infra.scripted_llm import register_scripted_provider

    hostile = "".join(HOSTILE_TEXT)
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"answers": {"hostile": [hostile]}}))
    register_scripted_provider(path)
    recorded: list[dict] = []
    client = LLMClient("scripted/replay", backoff_s=0.0, retries=0, recorder=recorded.append)
    answer = client.complete([{"role": "user", "content": "q"}], purpose="hostile", call_key="k", seq=0)
    assert answer.text == clean_text(hostile) and recorded[0]["answer"] == answer.text
    assert_clean(answer.text.replace("\n", "").replace("\t", ""))


@pytest.fixture(scope="module")
def host():
    from mechanisms.sandbox import SandboxHost

    with SandboxHost(call_timeout_s=2.0) as sandbox:
        yield sandbox


HUGE_PROPOSER = '''class Huge:
    name = "huge"

    def propose(self, ctx):
        return {"candidates": [{"changes": {"MATRIX_LR": 10 ** 300}, "reason": "overflow"}]}
'''
HOSTILE_MECHANISM = '''class Hostile:
    name = "evil\\ud800\\x1b[31m\\u202e"

    def plan(self, ctx):
        raise ValueError("bad \\ud800 \\x1b]0;title\\x07 \\x00 \\x9b end")
'''


def test_a_mechanism_proposing_a_300_digit_integer_is_quarantined_before_the_inner_loop(host) -> None:
    from mechanisms.runtime import MechanismRef, MechanismRuntime

    ref = MechanismRef(name="huge", version="v1", source=HUGE_PROPOSER)
    with MechanismRuntime([ref], call_timeout_s=2.0, sandbox=host) as mechanisms:
        assert mechanisms.propose({"iteration": 3}) == []
        liveness = mechanisms.liveness()["huge"]
    assert liveness["quarantined"] and "the JSON has the integer" in liveness["reason"]


def test_hostile_text_from_a_mechanism_arrives_clean(host) -> None:
    from mechanisms.runtime import MechanismRef, MechanismRuntime

    ref = MechanismRef(name="hostile", version="v1", source=HOSTILE_MECHANISM)
    with MechanismRuntime([ref], call_timeout_s=2.0, sandbox=host) as mechanisms:
        mechanisms.plan({"iteration": 1})
        report = mechanisms.liveness()
    assert report["hostile"]["quarantined"]
    for found in strings_in(report):
        assert_clean(found.replace("\n", ""))
    assert report["hostile"]["declared_name"] == "evil\ufffd\ufffd[31m\ufffd"
    json.dumps(report, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("as_json", [True, False])
def test_validate_reports_a_mechanism_with_hostile_name_and_error(tmp_path: Path, monkeypatch, as_json: bool) -> None:
    from bilevel.cli import app

    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "hostile.py"
    path.write_text(HOSTILE_MECHANISM)
    result = CliRunner().invoke(app, ["mechanisms", "validate", str(path), *(["--json"] if as_json else [])])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_clean(result.output.replace("\n", ""))
    if as_json:
        report = json.loads(result.output)
        assert report["stage_failed"] == "smoke" and "bad \ufffd \ufffd]0;title\ufffd" in report["error"]
    else:
        assert "refused: smoke stage failed" in result.output


def _run_script_outcome(tmp_path: Path, metrics: str | None, stdout: str):
    from search.objective import Objective
    from workloads.script import measured_outcome
    from workloads.subprocess_run import ProcessResult

    if metrics is not None:
        (tmp_path / "metrics.json").write_text(metrics)
    result = ProcessResult(returncode=0, timed_out=False, wall_seconds=1.0, tail=stdout, log_path=tmp_path / "log")
    return measured_outcome(result, tmp_path, Objective(), seed=0)


@pytest.mark.parametrize("literal", HOSTILE_NUMBERS)
def test_a_script_writing_a_hostile_number_in_metrics_json_crashes_its_run_only(tmp_path: Path, literal: str) -> None:
    for metrics in (f'{{"val_bpb": {literal}}}', f'{{"val_bpb": 1.5, "grad_norm": {literal}}}'):
        outcome = _run_script_outcome(tmp_path, metrics, "")
        assert outcome.status == "crash" and "metrics.json is not usable: the JSON has" in (outcome.error_tail or "")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1" * 400, "1e999", "9" * 5000])
def test_a_script_printing_a_hostile_number_is_read_without_an_exception(tmp_path: Path, value: str) -> None:
    steps = _run_script_outcome(tmp_path, None, f"---\nval_bpb: 1.25\nsteps: {value}\nextra: {value}\n")
    assert (steps.status, steps.value, steps.steps, steps.metrics) == ("ok", 1.25, None, {})
    objective = _run_script_outcome(tmp_path, None, f"---\nval_bpb: {value}\n")
    assert objective.status == "crash" and "not a finite number" in (objective.error_tail or "")


def test_script_metric_names_are_only_those_mlflow_takes(tmp_path: Path) -> None:
    from mlflow.utils.validation import _validate_metric_name

    names = [*HOSTILE_TEXT, "a/../b", "../up", ".", "x" * 65, "grad_norm", "val loss", "lr:0", "μ"]
    names = list({clean_text(name): name for name in names}.values())  # keys equal once cleaned refuse the file
    metrics = json.dumps({"val_bpb": 1.0, **{name: float(i) for i, name in enumerate(names)}})
    outcome = _run_script_outcome(tmp_path, metrics, "")
    assert outcome.status == "ok" and {"grad_norm", "val loss", "lr:0", "μ"} <= set(outcome.metrics)
    for name in outcome.metrics:
        _validate_metric_name(f"run.{name}")  # raises for a name MLflow would refuse in the batch
        assert_clean(name)


# -- every sink the cleaned text reaches ---------------------------------------------------------------------


def cleaned_corpus() -> list[str]:
    """What the parser lets through of the hostile corpus: the only text of this kind any sink receives."""
    return [loads_bounded(json.dumps([text]), 10_000, 3)[0] for text in HOSTILE_TEXT + fuzz_strings(60, seed=9)]


def test_the_console_prints_cleaned_text_in_tables_progress_and_generation_lines(tmp_path: Path) -> None:
    from bilevel.progress import RunProgress
    from search.objective import Objective
    from search.progress_line import event_line
    from search.trace import Experiment, RunOutcome

    corpus = cleaned_corpus()
    path = tmp_path / "console.txt"
    with path.open("w", encoding="utf-8") as handle:  # encoding errors would raise here
        console = Console(file=handle, width=100, color_system=None, force_terminal=False)
        table = Table(title=corpus[0])
        table.add_column("text")
        for text in corpus:
            table.add_row(Text(text))
        console.print(table)
        progress = RunProgress(console, total=3, objective=Objective())
        with progress:
            for index, text in enumerate(corpus[:20]):
                experiment = Experiment(index=index + 1, config={}, changes={"DEPTH": index}, hypothesis=text,
                                        proposed_by=f"mechanism:{text}", decided_by=text,
                                        outcome=RunOutcome(status="crash", error_tail=text, seed=0))
                progress.on_event("experiment", {"experiment": experiment, "best": 1.0})
                line = event_line("experiment", {"experiment": experiment, "best": 1.0})
                assert line is not None
                console.print(Text(line))
            progress.on_event("generation", {"generation": 0, "best": 1.0, "active": corpus, "notes": corpus})
            console.print(Text(event_line("generation", {"generation": 0, "best": 1.0, "active": corpus}) or ""))
    written = path.read_text(encoding="utf-8")
    assert "\x1b" not in written and "\u202e" not in written and "generation 0 done" in written


def test_mlflow_takes_cleaned_text_as_params_and_tags(tmp_path: Path) -> None:
    from infra.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    corpus = cleaned_corpus()
    run_id, _ = tracker.ensure_run("bilevel/fuzz", "fuzz-1", run_name=corpus[0] or "r",
                                   tags={f"t{i}": text for i, text in enumerate(corpus[:40])})
    tags = {f"h{i}": text for i, text in enumerate(corpus)}
    params = {f"change.p{i}": text for i, text in enumerate(corpus)}
    tracker.log(run_id, params=params, tags=tags, metrics={"value": 1.0})
    data = tracker.client.get_run(run_id).data
    for i, text in enumerate(corpus):
        assert data.tags[f"bilevel.h{i}"] == text and data.params[f"change.p{i}"] == text[:500]


def test_json_files_and_traces_take_cleaned_text_and_read_back_equal(tmp_path: Path) -> None:
    from infra.runs import RunFolder, write_json_atomic
    from search.trace import Experiment, RunOutcome, Trace

    corpus = cleaned_corpus()
    write_json_atomic(tmp_path / "notes.json", {"notes": corpus})
    assert json.loads((tmp_path / "notes.json").read_text(encoding="utf-8")) == {"notes": corpus}
    trace = Trace(experiments=[Experiment(index=i, config={"OPTIMIZER": text}, hypothesis=text, proposed_by="llm",
                                          outcome=RunOutcome(status="crash", error_tail=text, log_tail=text, seed=0))
                               for i, text in enumerate(corpus)])
    folder = RunFolder(tmp_path / "runs", "fuzz-run")
    folder.write_trace(trace)
    assert folder.read_trace() == trace


def test_the_html_report_takes_cleaned_text(tmp_path: Path) -> None:
    from reports.build import build_meta_run_report
    from tests.unit.report_fixtures import synthetic_trace, write_run

    hypothesis = " | ".join(cleaned_corpus())
    write_run(tmp_path / "runs", "run-1", synthetic_trace(7, experiments=6, hypothesis=hypothesis))
    page = build_meta_run_report(tmp_path / "runs", "run-1", tmp_path / "out").read_text(encoding="utf-8")
    assert "\u202e" not in page and "\x1b" not in page and "\x00" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_the_store_refuses_or_keeps_ascii_metadata(text: str) -> None:
    from datetime import UTC, datetime

    from infra.store import VersionMeta, check_name, encode_metadata

    for cleaned in {text, clean_text(text)}:
        try:
            meta = VersionMeta(meta_run_id="run-1", generation=0, model=cleaned)
        except ValidationError as error:  # refused: a ValueError with the field named
            assert "model" in str(error) and (cleaned != clean_text(cleaned) or "printable ASCII" in str(error))
        else:
            metadata = encode_metadata("ab" * 32, meta, datetime(2026, 1, 1, tzinfo=UTC))
            assert all(value.isascii() and value.isprintable() for value in metadata.values())
        try:
            assert check_name(cleaned).isascii()
        except ValueError as error:
            assert "mechanism name" in str(error)

