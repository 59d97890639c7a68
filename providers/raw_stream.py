"""``RawStreamRead``: an OpenAI chat model reads the provider's stream itself, below the SDK's
per-chunk objects, for invokes and streams alike.

Remote models stream even for an invoke, so the first-token deadline, the stall check and the
cut-stream check (``providers.guard``) hold there too. Through the SDK each chunk of a stream
becomes a pydantic object and is dumped back to a dict; through LangChain, on an invoke, each
then becomes a message chunk, a callback and a merge: measured, most of a call's server CPU
(``benchmarks/framework_cpu.py``). Here the SSE lines are read with the SDK's raw streaming
response (its client, headers, retries) and each event is parsed once (orjson), under the same
guard, which then runs once for each read from the network (the events that arrived together), not
once an event; an event that is not JSON is skipped and counted here, as the ``providers.sse_tolerance``
hook does below the SDK's own parsing (which this leaves out, so no event is parsed twice):

- an invoke with no handler that shows every chunk (not ``astream_events``, not the playground)
  keeps only the text, the finish reason, the model and the usage, and returns the message
  LangChain would have merged. The callbacks hear of the first token (its time), and of a call cut
  short, how many text chunks it had streamed (``TEXT_CHUNKS``: it is billed for them);
- a stream turns each event dict into LangChain's chunk with langchain-openai's own converter
  (what it does with the SDK's dump of the same event), and tells the callbacks of each, as
  langchain-openai does.

A request that needs more than text (tools, structured output, log probabilities, several
choices, the Responses API) takes langchain-openai's own path, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import orjson
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_openai.chat_models.base import _create_usage_metadata
from openai._base_client import make_request_options
from openai._response import AsyncAPIResponse, AsyncResponseContextManager, async_to_streamed_response_wrapper
from openai.resources.chat import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from providers.guard import GuardedStream, mark_bad_chunk, provider_failure
from providers.sse_tolerance import BadChunkTally
from vocabulary.run_metadata import BAD_CHUNKS, TEXT_CHUNKS

# Generation options a text-only request may carry (the door passes OpenAI's names) and still be read here.
TEXT_OPTIONS = frozenset(
    {"max_tokens", "max_completion_tokens", "top_p", "seed", "temperature", "user", "stop",
     "presence_penalty", "frequency_penalty"}
)  # fmt: skip

DRAIN_S = 0.1  # the SDK's own bound on reading past [DONE]


@dataclass
class _Answer:
    """What the events of one stream add up to."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    model: str | None = None
    response_id: str | None = None
    system_fingerprint: str | None = None
    usage: dict[str, Any] | None = None
    service_tier: str | None = None
    bad_chunks: int = 0
    told: bool = False  # whether the callbacks heard of the first token

    def add(self, event: dict[str, Any]) -> str:
        """Take one event in; the text it adds."""
        self.response_id = self.response_id or event.get("id")
        self.model = event.get("model") or self.model
        if event.get("usage"):
            self.usage, self.service_tier = event["usage"], event.get("service_tier")
        choices = event.get("choices") or ()
        if not choices:
            return ""
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            self.system_fingerprint = event.get("system_fingerprint") or self.system_fingerprint
        text = (choice.get("delta") or {}).get("content") or ""
        if text:
            self.parts.append(text)
        return text

    def result(self) -> ChatResult:
        info: dict[str, Any] = {"finish_reason": self.finish_reason, "model_name": self.model}
        if self.system_fingerprint:
            info["system_fingerprint"] = self.system_fingerprint
        if self.bad_chunks:
            info[BAD_CHUNKS] = self.bad_chunks
        message = AIMessage(
            content="".join(self.parts),
            id=self.response_id,
            usage_metadata=_create_usage_metadata(self.usage, self.service_tier) if self.usage else None,
            response_metadata={**info, "model_provider": "openai"},
        )
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)],
                          llm_output={"model_name": self.model, "token_usage": self.usage or {}})  # fmt: skip


async def _drain(response: httpx2.Response) -> None:
    """Read what follows ``[DONE]`` (an HTTP/1.1 body's last chunk), so the connection goes back to
    the pool: closed unread, it is dropped, and the next call pays a new TCP connection."""
    with contextlib.suppress(httpx2.HTTPError, httpx2.StreamError, TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            async for _ in response.stream:  # type: ignore[union-attr]  # the SDK's async byte stream
                pass


# What the SDK's ``create`` takes as request options, not as the body.
_REQUEST_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


def _streamed_create(completions: AsyncCompletions, payload: dict[str, Any]) -> AsyncResponseContextManager[Any]:
    """``completions.with_streaming_response.create(**payload)`` without the SDK's typed transform
    of the body: langchain-openai's payload is plain JSON already, and the transform walks it
    against the request's TypedDict (about 5 % of an invoke's server CPU, measured). The same
    request goes out: ``tests/service/test_raw_stream_request.py`` compares the two."""
    body = {key: value for key, value in payload.items() if key not in _REQUEST_OPTIONS}
    given = {key: payload[key] for key in _REQUEST_OPTIONS if key in payload}

    async def post(*, extra_headers: dict[str, str]) -> AsyncAPIResponse[Any]:
        # The wrapper adds the SDK's "give me the raw stream" header to the caller's.
        options = make_request_options(**{**given, "extra_headers": extra_headers}, security={"bearer_auth": True})
        return await completions._post(  # type: ignore[return-value]  # a raw response: the header above asks for one
            "/chat/completions",
            body=body,
            options=options,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )

    return async_to_streamed_response_wrapper(post)(extra_headers=given.get("extra_headers") or {})


@functools.cache
def _streams_every_chunk(handler: type[Any]) -> bool:
    # Once per handler class: an isinstance check against the runtime Protocol costs ~2 % of an invoke.
    return issubclass(handler, _StreamingCallbackHandler)


Batch = list[dict[str, Any]]  # the events that arrived in one read from the network
_LINE_ENDS = b"\r\n"  # a read ending in one of these ends its last line


def _finished(batch: Batch) -> bool:
    return any(choice.get("finish_reason") for event in batch for choice in event.get("choices") or ())


def _mark_bad_batch(batch: Batch, count: int) -> None:
    batch[-1][BAD_CHUNKS] = count


async def _line_reads(response: httpx2.Response) -> AsyncGenerator[list[bytes], None]:
    """The whole lines of each read from the network; at the end, a last line with no line end,
    as the SDK's line decoder gives it. Bytes: an event stream is UTF-8, which the JSON parser
    checks, so no text decoder (and no charset lookup) runs on each read."""
    tail = b""
    async for data in response.aiter_bytes():
        data = tail + data
        complete = data.splitlines()  # bytes split at CR, LF and CRLF only, as the SDK's decoder
        tail = complete.pop() if complete and data[-1] not in _LINE_ENDS else b""
        yield complete
    yield [tail]


def _parsed(data: bytes) -> Any:
    """The event's JSON, by orjson (a third of ``json.loads``' time on these events); what orjson
    refuses and ``json.loads`` takes (NaN, integers past 64 bits) is taken, as the SDK would."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


@dataclass
class _Lines:
    """The events of a stream's lines, read by ``RawStreamRead._event_batches``."""

    tally: BadChunkTally | None
    request: httpx2.Request
    done: bool = False  # [DONE] came
    failure: Exception | None = None  # to raise once the events before it went on

    def events(self, lines: list[bytes]) -> Batch:
        batch: Batch = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # event names, comments, blank lines between events
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                break
            try:
                event = _parsed(data)
            except ValueError as exc:
                if self.tally is None:  # a bad event ends the stream, as the SDK has it
                    self.failure = exc
                    break
                self.tally.count += 1
                if self.tally.exceeded:
                    self.failure = self.tally.error()
                    break
                continue
            if event.get("error"):  # an error sent mid-stream, as the SDK raises it
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                self.failure = openai.APIError(str(message), self.request, body=error)
                break
            batch.append(event)
        return batch


class RawStreamRead(GuardedStream, BaseChatModel):
    """Mixin placed before ``ChatOpenAI`` (after the guard's own): see the module docstring."""

    def _text_only(self, kwargs: dict[str, Any]) -> bool:
        model: Any = self
        plain = (
            not model.model_kwargs
            and model.n in (None, 1)
            and not model.logprobs
            and not model.include_response_headers
            and not model._uses_gateway
            and not model._use_responses_api(kwargs)
        )
        return plain and set(kwargs) <= TEXT_OPTIONS

    def _reads_invoke_stream(self, kwargs: dict[str, Any], run_manager: Any) -> bool:
        handlers = run_manager.handlers if run_manager is not None else []
        if any(_streams_every_chunk(handler.__class__) for handler in handlers):
            return False  # astream_events and astream_log show every chunk: LangChain's own stream
        return self._text_only(kwargs)

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        if async_api and "stream" not in kwargs and self._reads_invoke_stream(kwargs, run_manager):
            return False  # LangChain then asks _agenerate, which streams below it
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _guarded_events(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AsyncIterator[Batch]:
        model: Any = self
        options = {**self.call_options(kwargs), "stream": True, "stream_options": {"include_usage": True}}
        tally = self.guard.bad_chunk_tally() if self.guard is not None else None
        batches = self._event_batches(model._get_request_payload(messages, stop=stop, **options), tally)
        if self.guard is not None:
            batches = self.guard.stream(batches, ends_answer=_finished, mark_bad=_mark_bad_batch, counted=tally)
        return batches

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if not self._reads_invoke_stream(kwargs, run_manager):
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        answer = _Answer()
        last: dict[str, Any] | None = None
        untold = 0  # text chunks since the last one the callbacks were told of
        try:
            async for batch in self._guarded_events(messages, stop, kwargs):
                last = batch[-1]
                for event in batch:
                    if answer.add(event):
                        if not answer.told and run_manager is not None:
                            await run_manager.on_llm_new_token(answer.parts[0])  # the first token's time
                            answer.told = True
                        else:
                            untold += 1
        except BaseException as exc:
            if untold and run_manager is not None:  # a call cut short is billed for what it streamed
                told: dict[str, Any] = {TEXT_CHUNKS: untold}
                await run_manager.on_llm_new_token("", chunk=None, **told)
            if isinstance(exc, openai.APIError):
                raise provider_failure(exc) from None
            raise
        answer.bad_chunks = int((last or {}).get(BAD_CHUNKS, 0))
        return answer.result()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if not self._text_only(kwargs):
            async for theirs in super()._astream(messages, stop, run_manager, **kwargs):
                yield theirs
            return
        model: Any = self
        chunk_class: type[BaseMessageChunk] = AIMessageChunk
        last: dict[str, Any] = {}
        chunk: ChatGenerationChunk | None = None
        try:
            async for batch in self._guarded_events(messages, stop, kwargs):
                last = batch[-1]
                for event in batch:
                    for choice in event.get("choices") or ():
                        choice.setdefault("delta", {})  # the SDK's objects always have one; the converter expects it
                    converted = model._convert_chunk_to_generation_chunk(event, chunk_class, {})
                    if converted is None:
                        continue
                    chunk, chunk_class = converted, converted.message.__class__
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        except openai.APIError as exc:
            raise provider_failure(exc) from None
        if BAD_CHUNKS in last and chunk is not None:  # the guard marks the last event once the stream ends
            mark_bad_chunk(chunk, last[BAD_CHUNKS])

    async def _event_batches(self, payload: dict[str, Any], tally: BadChunkTally | None) -> AsyncIterator[Batch]:
        """The data of the server-sent events the provider streams, decoded, up to ``[DONE]``: one
        list for each read from the network, so the guard's deadlines run once for what arrived
        together, not once an event. An event that is not JSON is skipped and counted on
        ``tally`` (past its limit the stream fails as ``malformed_stream``), or without one ends
        the stream, as the SDK has it."""
        model: Any = self
        async with _streamed_create(model.async_client, payload) as response:
            http = response.http_response
            lines = _Lines(tally, http.request)
            async with contextlib.aclosing(_line_reads(http)) as reads:  # closed here, not by the collector
                async for complete in reads:
                    batch = lines.events(complete)
                    if batch:
                        yield batch
                    if lines.failure is not None:
                        raise lines.failure
                    if lines.done:
                        await _drain(http)
                        return
