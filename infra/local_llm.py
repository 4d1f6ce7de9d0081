"""The embedded local LLM as a litellm custom provider: `local/<name>` runs llama-cpp-python in this process.

One model per process, loaded on the first call (provisioning it first if needed), used under a lock
because llama.cpp objects are not thread-safe: parallel callers queue. Consecutive prompts that share
a prefix (system text, workload, parameter table) reuse its KV cache, so only the new tail is evaluated;
when prompts of several kinds or tracks interleave, the KV state a prompt is about to throw away is kept in
a bounded RAM cache (infra/prefix_cache.py) and restored for the next prompt that shares more of it.
JSON answers are constrained by a grammar built from the schema the caller asks for; any answer stops early
when one line starts repeating (the 1.5B model loops).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import infra.settings  # noqa: F401  (sets OMP_WAIT_POLICY=PASSIVE and telemetry opt-outs before any import below)
from infra.local_model import ProvisioningError, configured_model_path, ensure_model
from infra.prefix_cache import DiskPrefixStore, PrefixStateCache, Snapshot, common_prefix
from infra.settings import LOCAL_MODEL, Settings

log = logging.getLogger(__name__)

LOCAL_PROVIDER = LOCAL_MODEL.split("/", 1)[0]
DEFAULT_MAX_TOKENS = 1024
JSON_MIN_MAX_TOKENS = 256  # a proposal takes 30-70 tokens; its schema allows about 170
MAX_SCHEMA_CHARS = 50_000
# A KV state is kept for later only when the next prompt would throw away at least this many of its tokens, and
# restored only when that saves at least MIN_RESTORE_GAIN tokens of evaluation (a restore copies tens of MB).
MIN_SNAPSHOT_TOKENS = 128
MIN_RESTORE_GAIN = 32
# A call that evaluated at least this many prompt tokens writes its state to disk for later processes, which read
# one back when it saves them at least MIN_DISK_GAIN tokens (reading tens of MB costs less than 0.1 s).
DISK_MIN_EVALUATED = 512
MIN_DISK_GAIN = 256
# The repetition stop: every REPEAT_CHECK_EVERY generated tokens, the answer so far is read back; one line of more
# than REPEAT_MIN_CHARS characters that occurs REPEAT_TIMES times is a loop, and generation stops there.
REPEAT_CHECK_EVERY = 32
REPEAT_MIN_CHARS = 8
REPEAT_TIMES = 12
REPEAT_WINDOW_TOKENS = 4096
ROLES = ("system", "user", "assistant")
# litellm passes these through optional_params; they mean nothing to an in-process model.
_IGNORED_PARAMS = frozenset({"max_retries", "extra_body", "user", "stream_options", "parallel_tool_calls"})
_UNSUPPORTED_PARAMS = frozenset({"tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs"})
_SUPPORTED_PARAMS = frozenset({"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "response_format", "n", "stream"})


class LocalLLMError(RuntimeError):
    """A request the local model cannot serve; the message says what to change."""


class ContextTooSmall(LocalLLMError):
    """The prompt plus answer do not fit the configured context."""


# -- pure translation of the OpenAI request into llama-cpp terms ---------------------------------------


def llama_response_format(response_format: Any) -> dict[str, Any] | None:
    """Translate an OpenAI `response_format` into llama-cpp's: json_schema -> {"type": "json_object", "schema": S}."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise LocalLLMError(f"response_format must be a dict, got {type(response_format).__name__}")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema")
        return {"type": "json_object"} if schema is None else {"type": "json_object", "schema": _checked_schema(schema)}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise LocalLLMError("response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}")
        return {"type": "json_object", "schema": _checked_schema(spec["schema"])}
    raise LocalLLMError(f"unsupported response_format type {kind!r}; use 'text', 'json_object' or 'json_schema'")


def _checked_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise LocalLLMError(f"a JSON schema must be an object, got {type(schema).__name__}")
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise LocalLLMError(f"the JSON schema is longer than {MAX_SCHEMA_CHARS} characters")
    return schema


def chat_messages(messages: Any) -> list[dict[str, str]]:
    """OpenAI chat messages reduced to role + text; anything a text model cannot read is refused."""
    if not isinstance(messages, list) or not messages:
        raise LocalLLMError("messages must be a non-empty list")
    clean = []
    for position, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise LocalLLMError(f"message {position}: role must be one of {ROLES}, got {role!r}")
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: text only
            if any(not isinstance(part, dict) or part.get("type") != "text" for part in content):
                raise LocalLLMError(f"message {position}: the local model reads text parts only")
            content = "".join(str(part.get("text", "")) for part in content)
        if not isinstance(content, str):
            raise LocalLLMError(f"message {position}: content must be text, got {type(content).__name__}")
        clean.append({"role": role, "content": content})
    return clean


@dataclass(frozen=True)
class GenerationParams:
    """What the local model is asked to do besides the messages."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: dict[str, Any] | None = None


def generation_params(optional_params: dict[str, Any], metadata: dict[str, Any] | None) -> GenerationParams:
    """GenerationParams from litellm's optional_params; unsupported features are refused, not silently dropped."""
    unsupported = sorted(set(optional_params) & _UNSUPPORTED_PARAMS)
    if unsupported:
        raise LocalLLMError(f"the local model does not support {', '.join(unsupported)}")
    unknown = set(optional_params) - _IGNORED_PARAMS - _SUPPORTED_PARAMS
    if unknown:
        log.debug("local model ignores parameters %s", sorted(unknown))
    if optional_params.get("n") not in (None, 1):
        raise LocalLLMError("the local model returns one choice per call (n=1); call it several times instead")
    temperature = _number(optional_params, "temperature", 0.7, 0.0, 2.0)
    top_p = _number(optional_params, "top_p", 0.95, 0.0, 1.0)
    max_tokens = next((optional_params[k] for k in ("max_tokens", "max_completion_tokens") if optional_params.get(k) is not None), DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise LocalLLMError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    stop = optional_params.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    if not all(isinstance(item, str) for item in stop):
        raise LocalLLMError("stop must be a string or a list of strings")
    seed = optional_params.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise LocalLLMError(f"seed must be an integer, got {seed!r}")
    response_format = llama_response_format(optional_params.get("response_format"))
    if response_format is not None and max_tokens < JSON_MIN_MAX_TOKENS:
        # A JSON answer cut short is invalid whatever it said: the call would be wasted.
        log.debug("max_tokens %d raised to %d for a JSON answer", max_tokens, JSON_MIN_MAX_TOKENS)
        max_tokens = JSON_MIN_MAX_TOKENS
    return GenerationParams(
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=stop,
        seed=seed if seed is not None else call_seed(metadata),
        response_format=response_format,
    )


def _number(params: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise LocalLLMError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def call_seed(metadata: dict[str, Any] | None) -> int | None:
    """A sampling seed from the call's identity (purpose, call_key, seq): a repeated call (a resumed run) answers
    the same, while candidates and re-asks, whose call keys differ, sample differently. None without an identity."""
    if not metadata or "call_key" not in metadata:
        return None
    identity = f"{metadata.get('call_key')}|{metadata.get('seq', 0)}|{metadata.get('purpose', '')}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big")


# -- the repetition stop ------------------------------------------------------------------------------------


def looping_line(text: str, *, min_chars: int = REPEAT_MIN_CHARS, times: int = REPEAT_TIMES) -> str | None:
    """The line (stripped) longer than `min_chars` characters that occurs at least `times` times in `text`: a model
    stuck in a loop. None when there is none."""
    counts = Counter(stripped for line in text.splitlines() if len(stripped := line.strip()) > min_chars)
    if not counts:
        return None
    line, count = counts.most_common(1)[0]
    return line if count >= times else None


class RepetitionStop:
    """A llama-cpp stopping criterion (called with the token ids so far after each sampled token): every `every`
    generated tokens it detokenizes the answer so far (at most `window` tokens of it) and stops generation for good
    once `looping_line` finds a loop. The first call marks where the answer starts (llama-cpp calls it first with
    the prompt's tokens only)."""

    def __init__(self, detokenize: Callable[[list[int]], bytes], *, every: int = REPEAT_CHECK_EVERY,
                 window: int = REPEAT_WINDOW_TOKENS, min_chars: int = REPEAT_MIN_CHARS, times: int = REPEAT_TIMES) -> None:
        self._detokenize = detokenize
        self.every, self.window, self.min_chars, self.times = every, window, min_chars, times
        self._start: int | None = None
        self.line: str | None = None  # the repeated line, once it stopped

    def __call__(self, input_ids: Sequence[int], logits: Any = None) -> bool:
        if self.line is not None:
            return True
        if self._start is None:
            self._start = len(input_ids)
        generated = len(input_ids) - self._start
        if generated <= 0 or generated % self.every:
            return False
        tail = [int(token) for token in input_ids[max(self._start, len(input_ids) - self.window):]]
        text = self._detokenize(tail).decode("utf-8", errors="ignore")
        self.line = looping_line(text, min_chars=self.min_chars, times=self.times)
        return self.line is not None


# -- the model runtime: one per process ------------------------------------------------------------------


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens whose KV state was reused (from the previous call or the prefix cache)
    seconds: float
    restored_tokens: int = 0  # of those, the tokens a snapshot from the prefix cache brought back
    prompt_seconds: float | None = None  # llama.cpp's own timings, when the model reports them
    generation_seconds: float | None = None
    generation_evals: int | None = None  # tokens evaluated one by one while answering
    prompt_evals: int | None = None  # prompt tokens evaluated in batches (llama.cpp's count)
    repeated_line: str | None = None  # the line whose repetition stopped the answer early

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens the model actually evaluated for this call."""
        return self.prompt_tokens - self.cached_tokens

    @property
    def tokens_per_s(self) -> float | None:
        """Generation speed, from llama.cpp's timing of the answer's tokens (None without timings)."""
        if not self.generation_seconds or not self.generation_evals:
            return None
        return self.generation_evals / self.generation_seconds


class LocalModelRuntime:
    """A llama.cpp model loaded on first use and used by one caller at a time.

    The model object is llama-cpp's Llama with three hooks (see `load_llama`): `before_prompt(tokens)` is called
    with each prompt's tokens before they are evaluated, `extra_stop` is one more stopping criterion, and
    `kv_snapshot()` / `kv_restore(tokens, state, nbytes)` copy the KV state out and back."""

    def __init__(
        self,
        resolve_path: Callable[[], Path],
        *,
        threads: int,
        context: int,
        loader: Callable[[Path, int, int], Any] | None = None,
        prefix_cache_bytes: int = 0,
        disk_root: Path | None = None,
        prefix_disk_bytes: int = 0,
    ) -> None:
        self._resolve_path = resolve_path
        self._loader = loader or load_llama
        self.threads = threads
        self.context = context
        self._lock = threading.Lock()
        self._llama: Any = None
        self.load_seconds: float | None = None
        self.prefix_cache = PrefixStateCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._disk_root = disk_root if prefix_disk_bytes > 0 else None
        self._prefix_disk_bytes = prefix_disk_bytes
        self.prefix_disk: DiskPrefixStore | None = None  # set when the model is loaded (its folder names the model)
        self._reused: int | None = None  # set by _before_prompt during a call
        self._cold_next = False  # forget_prefix: the next call restores nothing, from RAM or disk
        self._restored = 0
        self.last: ChatResult | None = None  # the latest call's figures, for benchmarks and diagnostics

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def load(self) -> None:
        """Load the model now (at start-up), so that the first call does not pay for it."""
        with self._lock:
            self._load()

    def _load(self) -> Any:
        """Called under the lock."""
        if self._llama is None:
            path = self._resolve_path()
            started = time.perf_counter()
            llama = self._loader(path, self.threads, self.context)
            llama.before_prompt = self._before_prompt
            self._llama = llama
            if self._disk_root is not None:
                self.prefix_disk = DiskPrefixStore(self._disk_root / disk_folder_name(path, self.context),
                                                   self._prefix_disk_bytes)
            self.load_seconds = time.perf_counter() - started
            # Free the model before interpreter teardown; llama-cpp's own __del__ fails once modules are gone.
            atexit.register(self.close)
            log.info("local model %s loaded in %.1f s (%d threads, context %d)", path.name, self.load_seconds, self.threads, self.context)
        return self._llama

    def chat(self, messages: list[dict[str, str]], params: GenerationParams, deadline: float | None = None) -> ChatResult:
        """One chat completion. Waits for the model at most until `deadline` (time.monotonic()); a started
        generation is bounded by max_tokens and the repetition stop, not interrupted."""
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=wait):
            raise TimeoutError("the local model stayed busy with other calls until the timeout")
        try:
            llama = self._load()
            before = list(llama.input_ids[: llama.n_tokens])
            stop = RepetitionStop(llama.detokenize)
            llama.extra_stop = stop
            self._reused, self._restored = None, 0
            perf = getattr(llama, "perf", None)
            if perf is not None:
                perf(reset=True)
            started = time.perf_counter()
            try:
                response = llama.create_chat_completion(
                    messages=messages,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_tokens,
                    stop=list(params.stop),
                    seed=params.seed,
                    **self._constraint(params.response_format),
                )
            except Exception as error:
                llama.reset()  # a failed call may leave a partial sequence behind: the next one starts clean
                if isinstance(error, ValueError) and "exceed context window" in str(error):
                    raise ContextTooSmall(f"{error}; raise BILEVEL_LLM_CONTEXT (now {self.context}) or send a shorter prompt") from error
                raise
            finally:
                llama.extra_stop = None
            seconds = time.perf_counter() - started
            usage = response["usage"]
            prompt_tokens = int(usage["prompt_tokens"])
            cached = self._reused if self._reused is not None else reused_prefix(before, list(llama.input_ids[:prompt_tokens]))
            if self.prefix_disk is not None and prompt_tokens - cached >= DISK_MIN_EVALUATED:
                self._write_to_disk(llama)
            timings = perf() if perf is not None else None
            choice = response["choices"][0]
            if stop.line is not None:
                log.warning("local model stopped after %s tokens: the line %r repeats %d times",
                            usage["completion_tokens"], stop.line[:80], REPEAT_TIMES)
            self.last = ChatResult(
                text=choice["message"]["content"] or "",
                finish_reason=choice.get("finish_reason") or "stop",
                prompt_tokens=prompt_tokens,
                completion_tokens=int(usage["completion_tokens"]),
                cached_tokens=cached,
                seconds=seconds,
                restored_tokens=self._restored,
                prompt_seconds=timings["prompt_seconds"] if timings else None,
                generation_seconds=timings["generation_seconds"] if timings else None,
                generation_evals=timings["generation_evals"] if timings else None,
                prompt_evals=timings["prompt_evals"] if timings else None,
                repeated_line=stop.line,
            )
            return self.last
        finally:
            self._lock.release()

    def _before_prompt(self, prompt: Sequence[int]) -> None:
        """Called by the model (under our lock) with a prompt's tokens before it evaluates them: keep the KV state it
        is about to throw away, bring back a cached one (RAM, else disk) that shares more with the prompt, and note
        the reuse."""
        llama = self._llama
        live = [int(token) for token in llama.input_ids[: llama.n_tokens]]
        tokens = [int(token) for token in prompt]
        shared = common_prefix(live, tokens)
        found, found_shared = self.prefix_cache.best(tokens) if self.prefix_cache is not None else (None, 0)
        on_disk, disk_tokens, disk_shared = (None, (), 0)
        cold, self._cold_next = self._cold_next, False
        if cold:
            found, found_shared = None, 0
        elif self.prefix_disk is not None and len(tokens) - max(shared, found_shared) >= MIN_DISK_GAIN:
            on_disk, disk_tokens, disk_shared = self.prefix_disk.best(tokens)
        cache = self.prefix_cache
        if cache is not None and len(live) - shared >= MIN_SNAPSHOT_TOKENS and not cache.covers(live):
            state, nbytes = llama.kv_snapshot()
            cache.put(Snapshot(tuple(live), state, nbytes))
        if on_disk is not None and disk_shared >= max(shared, found_shared) + MIN_DISK_GAIN:
            restored = self._restore_from_disk(on_disk, disk_tokens)
            if restored:
                self._restored, shared = disk_shared - shared, disk_shared
            else:
                shared = 0  # the context was reset
        elif found is not None and cache is not None and found_shared >= shared + MIN_RESTORE_GAIN:
            llama.kv_restore(found.tokens, found.state, found.nbytes)
            cache.take(found)
            self._restored, shared = found_shared - shared, found_shared
        # llama.cpp evaluates at least the prompt's last token again, to have its logits.
        self._reused = min(shared, max(len(tokens) - 1, 0))

    def _restore_from_disk(self, path: Path, tokens: Sequence[int]) -> bool:
        """Restore a state file; a file that does not restore is removed, and the context starts clean."""
        assert self.prefix_disk is not None
        data = self.prefix_disk.read(path)
        if data is None:
            return False
        try:
            self._llama.kv_restore(tokens, data, len(data))
        except Exception as error:  # a truncated or foreign file: never worth failing the call for
            log.warning("the KV state %s does not restore (%s); removed", path.name, error)
            path.with_suffix(".tokens").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            self._llama.reset()
            return False
        return True

    def _write_to_disk(self, llama: Any) -> None:
        assert self.prefix_disk is not None
        try:
            state, nbytes = llama.kv_snapshot()
            self.prefix_disk.write([int(t) for t in llama.input_ids[: llama.n_tokens]], state, nbytes)
        except OSError as error:  # a full or read-only disk costs the next process its warm start, nothing more
            log.warning("could not keep the KV state on disk: %s", error)

    def _constraint(self, response_format: dict[str, Any] | None) -> dict[str, Any]:
        """Our own grammar for a JSON schema (it also bounds property counts), else llama-cpp's response_format."""
        if response_format and "schema" in response_format:
            grammar = _grammar_for(json.dumps(response_format["schema"], sort_keys=True))
            if grammar is not None:
                return {"grammar": grammar}
        return {"response_format": response_format}

    def close(self) -> None:
        """Free the model's memory; the next call loads it again."""
        with self._lock:
            if self.prefix_cache is not None:
                self.prefix_cache.clear()
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def forget_prefix(self) -> None:
        """Drop the KV state and the cached ones, and restore none from disk for the next call, so that it evaluates
        its whole prompt (benchmarks measure the reuse gain)."""
        with self._lock:
            self._cold_next = True
            if self.prefix_cache is not None:
                self.prefix_cache.clear()
            if self._llama is not None:
                self._llama.reset()


def reused_prefix(before: list[int], prompt: list[int]) -> int:
    """Prompt tokens llama.cpp did not evaluate again: the common prefix with the previous sequence (it always
    re-evaluates at least the last prompt token)."""
    common = 0
    for a, b in zip(before, prompt):
        if a != b:
            break
        common += 1
    return min(common, max(len(prompt) - 1, 0))


def disk_folder_name(model: Path, context: int) -> str:
    """Where a model's KV states go on disk: they restore only into the same model file, context size and llama.cpp
    (whose state format changes between versions)."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "none"
    size = model.stat().st_size if model.is_file() else 0
    return f"{model.stem}-{size}-ctx{context}-llama{version}"


def load_llama(path: Path, threads: int, context: int) -> Any:
    """A llama-cpp-python model object for `path` with the runtime's hooks (the default loader of LocalModelRuntime)."""
    _import_llama_cpp()
    try:
        return _hooked_llama_class()(model_path=str(path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                                     verbose=False)
    except (ValueError, RuntimeError) as error:
        raise LocalLLMError(f"llama.cpp could not load {path}: {error}") from error


@lru_cache(maxsize=1)
def _hooked_llama_class() -> type:
    """llama_cpp.Llama with the hooks LocalModelRuntime uses. Built on first use (importing llama_cpp is slow).

    The chat handler formats the messages, tokenizes them and calls `create_completion` with the tokens: that is
    where `before_prompt` sees them (before llama-cpp compares them with the KV state it holds) and where
    `extra_stop` joins the handler's own stopping criteria. llama-cpp's LlamaRAMCache is not used: each state it
    saves also copies the logits of up to n_batch positions (512 x 151,936 floats, 311 MB for Qwen2.5), uncounted
    in its capacity, in about a second; our snapshots hold the KV state only."""
    import llama_cpp

    class HookedLlama(llama_cpp.Llama):  # type: ignore[misc,name-defined]
        before_prompt: Callable[[Sequence[int]], None] | None = None
        extra_stop: Callable[[Any, Any], bool] | None = None

        def create_completion(self, prompt: Any, *args: Any, stopping_criteria: Any = None, **kwargs: Any) -> Any:
            if self.before_prompt is not None and not isinstance(prompt, (str, bytes)):
                self.before_prompt(prompt)
            if self.extra_stop is not None:
                stopping_criteria = llama_cpp.StoppingCriteriaList([*(stopping_criteria or []), self.extra_stop])
            return super().create_completion(prompt, *args, stopping_criteria=stopping_criteria, **kwargs)

        def kv_snapshot(self) -> tuple[Any, int]:
            """A copy of the context's state (the KV cells in use, the last logits) and its size in bytes."""
            size = llama_cpp.llama_state_get_size(self._ctx.ctx)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_get_data(self._ctx.ctx, buffer, size)
            if not 0 < written <= size:
                raise RuntimeError(f"llama_state_get_data wrote {written} of {size} bytes")
            return buffer, int(written)

        def kv_restore(self, tokens: Sequence[int], state: Any, nbytes: int) -> None:
            """Put back a state taken by kv_snapshot (or its bytes, read from a file) when the context held `tokens`."""
            if isinstance(state, (bytes, bytearray)):
                state = (ctypes.c_uint8 * nbytes).from_buffer_copy(state)
            if llama_cpp.llama_state_set_data(self._ctx.ctx, state, nbytes) != nbytes:
                raise RuntimeError("llama_state_set_data did not read the whole state")
            self.input_ids[: len(tokens)] = tokens
            self.n_tokens = len(tokens)
            self._requires_eval = True  # the restored logits are not a live decode: evaluate at least one token

        def perf(self, reset: bool = False) -> dict[str, Any] | None:
            """llama.cpp's timings since the last reset (prompt batches and single-token evaluations)."""
            if reset:
                llama_cpp.llama_perf_context_reset(self._ctx.ctx)
                return None
            data = llama_cpp.llama_perf_context(self._ctx.ctx)
            return {"prompt_seconds": data.t_p_eval_ms / 1000, "prompt_evals": int(data.n_p_eval),
                    "generation_seconds": data.t_eval_ms / 1000, "generation_evals": int(data.n_eval)}

    return HookedLlama


def _import_llama_cpp() -> Any:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when llama.cpp's OpenMP starts; a user's value stays
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy != "PASSIVE":
        # With spinning OpenMP threads, generation collapses when training shares the cores (DESIGN §11).
        log.warning("OMP_WAIT_POLICY is %r, not PASSIVE: the local model slows down badly next to training", policy)
    try:
        import llama_cpp
    except ImportError as error:
        raise LocalLLMError(
            "the local model needs llama-cpp-python: pip install 'bilevel[local]' "
            "(it compiles; CMAKE_ARGS=-DLLAVA_BUILD=OFF), or set BILEVEL_MODEL to an API model"
        ) from error
    return llama_cpp


_RUNTIMES: dict[tuple[str, int, int], LocalModelRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(settings: Settings) -> LocalModelRuntime:
    """The process-wide runtime for these settings' model file, threads and context (created, not loaded)."""
    key = (str(configured_model_path(settings)), settings.llm_threads, settings.llm_context)
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            if _RUNTIMES:
                log.warning("a second local model configuration in one process: %s (memory for two models)", key)
            _RUNTIMES[key] = LocalModelRuntime(lambda: ensure_model(settings), threads=settings.llm_threads,
                                               context=settings.llm_context,
                                               prefix_cache_bytes=settings.llm_prefix_cache_mb * 1024 * 1024,
                                               disk_root=settings.cache_dir.expanduser() / "kv",
                                               prefix_disk_bytes=settings.llm_prefix_disk_mb * 1024 * 1024)
        return _RUNTIMES[key]


# -- the litellm side ----------------------------------------------------------------------------------


def _litellm() -> Any:
    from infra.llm import import_litellm  # one import path: telemetry off and quiet loggers first

    return import_litellm()


# -- grammar: llama-cpp's schema converter plus minProperties/maxProperties -------------------------------------


def _bounded_object_converter() -> type:
    """A subclass of llama-cpp's SchemaConverter that also bounds the number of properties of a closed object
    whose properties are all optional (the shape of a proposal's "changes"), which llama-cpp ignores."""
    from llama_cpp.llama_grammar import SchemaConverter

    class BoundedObjectConverter(SchemaConverter):
        def visit(self, schema: Any, name: str) -> str:
            if not _is_bounded_closed_object(schema):
                return super().visit(schema, name)
            return self._add_rule(name or "root", self._bounded_object_rule(schema, name))

        def _bounded_object_rule(self, schema: dict[str, Any], name: str) -> str:
            prefix = f"{name}-" if name else ""
            kvs = []
            for prop_name, prop_schema in schema["properties"].items():
                value_rule = self.visit(prop_schema, f"{prefix}{prop_name}")
                kvs.append(self._add_rule(f"{prefix}{prop_name}-kv", f"{self._format_literal(json.dumps(prop_name))} space \":\" space {value_rule}"))
            count = len(kvs)
            low = max(0, min(int(schema.get("minProperties", 0)), count))
            high = max(low, min(int(schema.get("maxProperties", count)), count))

            def first(start: int, need: int, room: int) -> str:
                """One property at position >= start, then a tail: `need` (>= 1) to `room` properties in all."""
                choices = [f"{kvs[j]} {tail(j + 1, need - 1, room - 1)}".strip() for j in range(start, count - need + 1)]
                return self._add_rule(f"{prefix}first-{start}-{need}-{room}", " | ".join(choices))

            def tail(start: int, need: int, room: int) -> str:
                if room == 0 or start == count:
                    return ""
                more = f'"," space {first(start, max(need, 1), room)}'
                return self._add_rule(f"{prefix}tail-{start}-{need}-{room}", more if need else f"( {more} )?")

            if high == 0:
                return '"{" space "}" space'
            body = first(0, max(low, 1), high)
            return f'"{{" space {body} "}}" space' if low else f'"{{" space ( {body} )? "}}" space'

    return BoundedObjectConverter


def _is_bounded_closed_object(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and schema.get("type", "object") == "object"
        and isinstance(schema.get("properties"), dict)
        and bool(schema["properties"])
        and schema.get("additionalProperties") is False
        and not schema.get("required")
        and ("minProperties" in schema or "maxProperties" in schema)
    )


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """GBNF text for `schema`, as llama-cpp builds it, with property counts of closed objects enforced too."""
    converter = _bounded_object_converter()(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    converter.visit(converter.resolve_refs(schema, "schema"), "")
    return converter.format_grammar()


@lru_cache(maxsize=32)
def _grammar_for(schema_text: str) -> Any:
    """A compiled grammar per schema (proposal schemas repeat); None when it cannot be built, and then
    llama-cpp's own conversion of response_format is used (which falls back to plain JSON)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_string(json_schema_grammar(json.loads(schema_text)), verbose=False)
    except Exception as error:  # the converter raises assorted errors on schemas it does not support
        log.warning("cannot build a grammar for the JSON schema (%s); using llama-cpp's conversion", error)
        return None


@lru_cache(maxsize=1)
def _provider_class() -> type:
    """Built on first use, so importing this module does not import litellm (seconds)."""
    litellm = _litellm()
    from litellm.llms.custom_llm import CustomLLM

    class LocalLlamaProvider(CustomLLM):
        """litellm custom provider serving `local/<any name>` from the configured GGUF model."""

        def __init__(self, runtime: LocalModelRuntime) -> None:
            super().__init__()
            self.runtime = runtime

        def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict, model_response: Any,
                       print_verbose: Callable, encoding: Any, api_key: Any, logging_obj: Any, optional_params: dict,
                       acompletion: Any = None, litellm_params: Any = None, logger_fn: Any = None, headers: Any = None,
                       timeout: Any = None, client: Any = None) -> Any:  # fmt: skip
            name = f"{LOCAL_PROVIDER}/{model}"
            try:
                if optional_params.get("stream"):
                    raise LocalLLMError("streaming is not supported by the local provider")
                metadata = (litellm_params or {}).get("metadata")
                params = generation_params(optional_params, metadata if isinstance(metadata, dict) else None)
                clean = chat_messages(messages)
            except LocalLLMError as error:
                raise litellm.BadRequestError(message=str(error), model=name, llm_provider=LOCAL_PROVIDER) from error
            seconds = _timeout_seconds(timeout)
            deadline = None if seconds is None else time.monotonic() + seconds
            try:
                result = self.runtime.chat(clean, params, deadline)
            except TimeoutError as error:
                raise litellm.Timeout(message=str(error), model=name, llm_provider=LOCAL_PROVIDER) from error
            except ContextTooSmall as error:
                raise litellm.ContextWindowExceededError(message=str(error), model=name, llm_provider=LOCAL_PROVIDER) from error
            except (LocalLLMError, ProvisioningError) as error:
                # The user must act (install, free disk, fix a path): retrying would not help.
                raise litellm.BadRequestError(message=str(error), model=name, llm_provider=LOCAL_PROVIDER) from error
            if result.finish_reason == "length" and params.response_format:
                log.warning("local model hit max_tokens=%d inside a JSON answer; raise max_tokens", params.max_tokens)
            model_response.choices[0].message.content = result.text
            model_response.choices[0].finish_reason = result.finish_reason
            model_response.model = name
            model_response.created = int(time.time())
            model_response.usage = litellm.Usage(
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.prompt_tokens + result.completion_tokens,
                prompt_tokens_details={"cached_tokens": result.cached_tokens},
            )
            model_response._hidden_params["response_cost"] = 0.0
            return model_response

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            # The lock serialises calls anyway; a thread keeps the event loop free meanwhile.
            return await asyncio.to_thread(self.completion, *args, **kwargs)

        def streaming(self, *args: Any, **kwargs: Any) -> Any:
            raise litellm.BadRequestError(message="streaming is not supported by the local provider", model=LOCAL_MODEL, llm_provider=LOCAL_PROVIDER)

        async def astreaming(self, *args: Any, **kwargs: Any) -> Any:
            raise litellm.BadRequestError(message="streaming is not supported by the local provider", model=LOCAL_MODEL, llm_provider=LOCAL_PROVIDER)

    return LocalLlamaProvider


def _timeout_seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)):
        return float(timeout)
    read = getattr(timeout, "read", None)  # httpx.Timeout
    return float(read) if read is not None else None


_REGISTER_LOCK = threading.Lock()


def register_local_provider(settings: Settings) -> Any:
    """Serve `local/...` model strings from the local model in this process; keeps other custom providers.
    Idempotent: registering again replaces only our own entry, and the model is loaded once per process."""
    litellm = _litellm()
    with _REGISTER_LOCK:
        provider = _provider_class()(runtime_for(settings))
        others = [item for item in litellm.custom_provider_map if item.get("provider") != LOCAL_PROVIDER]
        litellm.custom_provider_map = [*others, {"provider": LOCAL_PROVIDER, "custom_handler": provider}]
        # Priced at zero, so cost accounting reports 0 instead of failing on an unknown model.
        names = {LOCAL_MODEL, settings.model} if settings.model.startswith(LOCAL_PROVIDER + "/") else {LOCAL_MODEL}
        free = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": LOCAL_PROVIDER,
                "mode": "chat", "max_input_tokens": settings.llm_context}  # fmt: skip
        litellm.register_model({name: dict(free) for name in names})
    return provider
