"""A provider double: a real HTTP server speaking the OpenAI chat-completions and Gemini
generateContent / streamGenerateContent wire formats, so the real SDK clients are tested through
their real request, streaming and error paths.

Each model answers according to a ``Behaviour`` set by the test (answer, fail with a status and
Retry-After, answer slowly, cut a stream without a finish reason, or call tools the request
declared), or per request through a ``Fault`` chosen by ``Behaviour.fault_for`` (the load benchmark
draws them at random). Every request is logged, and ``GET /double/served`` returns the log to a
test running in another process.
This is the only place in the project that knows the providers' wire formats.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class Fault:
    """One request's injected failure: an error ``status`` (with ``retry_after``), or a stream that
    breaks after some pieces of text (0: before any text): ends without a finish reason
    (``cut_after``), goes quiet until the caller hangs up (``stall_after``), sends the provider's
    error event (``error_after``), or sends ``bad_chunks`` events that are not JSON and goes on
    (``bad_after``)."""

    status: int | None = None
    retry_after: str | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    error_after: int | None = None
    bad_after: int | None = None
    bad_chunks: int = 1

    @property
    def kind(self) -> str:
        if self.status is not None:
            return str(self.status)
        for name in ("stall", "error", "bad"):
            if getattr(self, f"{name}_after") is not None:
                return f"{name}_mid_stream"
        return "cut_before_text" if self.cut_after == 0 else "cut_mid_stream"

    async def midway(self, i: int, error: bytes, bad: bytes) -> AsyncIterator[bytes]:
        """What breaks in before the stream's ``i``-th piece: nothing, bad chunks, or an error
        event (the stream then ends: ``self.ends_at(i)``); a stall never returns."""
        if i == self.stall_after:
            await asyncio.Event().wait()  # quiet until the caller hangs up
        if i == self.bad_after:
            for _ in range(self.bad_chunks):
                yield bad
        if i == self.error_after:
            yield error

    def ends_at(self, i: int) -> bool:
        return i in (self.cut_after, self.error_after)


@dataclass
class Behaviour:
    """How a model answers. ``fail_status`` wins over everything; ``delay_s`` applies first."""

    text: str | None = None  # None: a default answer that names the model and the question
    fail_status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    cut_stream: bool = False  # stream some text, then end without a finish reason
    chunk_delay_s: float = 0.0  # pause between streamed chunks (OpenAI), as a model generating
    delay_for: Callable[[str], float] | None = None  # per-question delay, on top of delay_s
    fail_when: Callable[[str], bool] | None = None  # fail_status applies only to these questions
    status_for: Callable[[str], int | None] | None = None  # per-question failure status, over fail_status
    # Refuse the presented key as the provider does: "masked" answers like the real API (OpenAI
    # 401 naming the key's first 8 and last 4 characters; Gemini 400 API_KEY_INVALID), "echo"
    # like a careless OpenAI-compatible server that repeats the whole key in its error message.
    reject_key: Literal["masked", "echo"] | None = None
    refused_keys: frozenset[str] = frozenset()  # these keys only are refused (masked), as revoked ones
    fault_for: Callable[[str], Fault | None] | None = None  # asked once per request, over everything above
    error_code: str | None = None  # an OpenAI error's ``code`` (e.g. "content_filter" with fail_status=400)
    # (function name, arguments) the model calls instead of answering, when the request declares
    # tools; a request without tools still gets text, as a real model cannot call what it was not offered.
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None
    # Refuse a conversation that ends with the assistant's own message (an assistant prefill) with
    # a 400, as providers that do not continue one do.
    reject_prefill: bool = False

    def status(self, question: str) -> int | None:
        if self.status_for is not None:
            return self.status_for(question)
        if self.fail_status and (self.fail_when is None or self.fail_when(question)):
            return self.fail_status
        return None

    def delay(self, question: str) -> float:
        return self.delay_s + (self.delay_for(question) if self.delay_for else 0.0)

    def fault(self, question: str) -> Fault | None:
        """This request's failure, if any; ``cut_after=-1`` stands for the default cut point."""
        if self.fault_for is not None:
            return self.fault_for(question)
        status = self.status(question)
        if status:
            return Fault(status=status, retry_after=self.retry_after)
        return Fault(cut_after=-1) if self.cut_stream else None


@dataclass
class Served:
    provider: str
    model: str
    stream: bool
    question: str
    status: int
    input_tokens: int = 0
    output_tokens: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None  # the injected fault's kind
    key: str = ""  # the key the request presented (OpenAI)
    chunks_sent: int = 0  # of a stream: fewer than the answer's words when the caller hung up
    completed: bool = False  # the whole answer went out (False for errors, cut streams, hang-ups)
    connection: str = ""  # the caller's address and port: requests on one pooled connection share it
    headers: dict[str, str] = field(default_factory=dict)  # as sent (OpenAI; empty when bodies are not kept)
    query: str = ""  # the URL's query string (OpenAI)

    @property
    def tools(self) -> list[str]:
        """The names of the functions the request declared (empty when none, or bodies not kept)."""
        return _openai_tools(self.body) if self.provider == "openai" else _gemini_tools(self.body)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "stream": self.stream,
            "question": self.question,
            "status": self.status,
            "fault": self.fault,
            "completed": self.completed,
        }


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else ""


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _openai_tools(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or [] if isinstance(t, dict) and "function" in t]


def _gemini_tools(body: dict[str, Any]) -> list[str]:
    # The REST API takes either spelling; google-genai sends camelCase, hand-written clients often not.
    names = []
    for tool in body.get("tools") or []:
        declarations = tool.get("functionDeclarations") or tool.get("function_declarations") or []
        names.extend(d["name"] for d in declarations)
    return names


def _arguments_words(calls: list[tuple[str, dict[str, Any]]]) -> int:
    return _words(" ".join(json.dumps(args) for _, args in calls))


def _pieces(text: str, size: int = 16) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, and at least two pieces, so a client
    that reads only the first argument delta of a streamed tool call is caught."""
    size = max(1, min(size, len(text) // 2))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return " ".join(parts)


class ProviderDouble:
    def __init__(self, *, keep_bodies: bool = True) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.served: list[Served] = []
        self.keep_bodies = keep_bodies  # False under load: the log then holds no request bodies
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/{version}/models/{model_action:path}", self._gemini, methods=["POST"]),
                Route("/double/served", self._served_log, methods=["GET"]),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- control ---------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.behaviours.clear()
            self.served.clear()

    def set(self, model: str, behaviour: Behaviour) -> None:
        self.behaviours[model] = behaviour

    def requests_for(self, model: str) -> list[Served]:
        with self._lock:
            return [s for s in self.served if s.model == model]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        # A pooled connection the double closes as the SDK reuses it would be a failed call the
        # double never logged; tests that count calls against the double's log must not see that race.
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_keep_alive=600)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("provider double did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # a test's hanging answer (delay_s) is nobody's to wait for
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- shared ----------------------------------------------------------------------------
    def _answer(self, model: str, question: str) -> str:
        behaviour = self.behaviours.get(model, Behaviour())
        if behaviour.text is not None:
            return behaviour.text
        return f"{model} answers: {question[-80:]} -- a complete answer that is long enough to pass checks."

    def _calls(self, model: str, declared: list[str]) -> list[tuple[str, dict[str, Any]]] | None:
        """The tool calls this request is answered with, or None for a text answer."""
        calls = self.behaviours.get(model, Behaviour()).tool_calls
        return calls if calls and declared else None

    def _log(self, served: Served) -> Served:
        # Logged on arrival: a slow answer must not land in the log of whichever test runs next.
        if not self.keep_bodies:
            served.body, served.headers = {}, {}
        with self._lock:
            self.served.append(served)
        return served

    async def _served_log(self, request: Request) -> Response:
        with self._lock:
            log = [s.as_dict() for s in self.served]
        return JSONResponse({"served": log})

    # -- OpenAI ----------------------------------------------------------------------------
    async def _openai(self, request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        stream = bool(body.get("stream"))
        question = _prompt_text(body.get("messages", []))
        behaviour = self.behaviours.get(model, Behaviour())
        fault = behaviour.fault(question)
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        served = self._log(
            Served("openai", model, stream, question, 0, body=body, fault=fault and fault.kind, key=key,
                   connection=_peer(request), headers=dict(request.headers), query=request.url.query)
        )  # fmt: skip
        await asyncio.sleep(behaviour.delay(question))
        if behaviour.reject_key or key in behaviour.refused_keys:
            served.status = 401
            return _openai_key_refused(request.headers.get("authorization", ""), behaviour.reject_key or "masked")
        messages = body.get("messages") or [{}]
        if behaviour.reject_prefill and messages[-1].get("role") == "assistant":
            served.status = 400
            message = "double says 400: the last message must be the user's, not the assistant's"
            error = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_prefill"}}
            return JSONResponse(error, status_code=400)
        if fault is not None and fault.status:
            served.status = fault.status
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            code = behaviour.error_code
            message = f"double says {fault.status}" + (f": {code}" if code else "")
            error = {"error": {"message": message, "type": "double", "code": code}}
            return JSONResponse(error, status_code=fault.status, headers=headers)
        answer, finish = _within(
            self._answer(model, question), body.get("max_completion_tokens") or body.get("max_tokens")
        )
        calls = self._calls(model, _openai_tools(body))
        completion = _arguments_words(calls) if calls else _words(answer)
        usage = {"prompt_tokens": _words(question), "completion_tokens": completion}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        served.status, served.input_tokens, served.output_tokens = (
            200,
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        base = {"id": "chatcmpl-double", "created": int(time.time()), "model": model}
        if calls:
            return _openai_tool_answer(served, behaviour, fault, base, calls, stream, usage, body)
        if not stream:
            choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": finish}
            served.completed = True
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        words = answer.split(" ")
        cut_after = None if fault is None else fault.cut_after
        if cut_after == -1:  # the default cut: after about half the words
            cut_after = len(words) // 2 + 1

        error_event = _sse({"error": {"message": "double says 500 mid-stream", "type": "server_error", "code": None}})
        bad = b'data: {"id": "chatcmpl-double", "choices": [{"delta": {"content": "\n\n'

        async def events() -> AsyncIterator[bytes]:
            for i, word in enumerate(words):
                if fault is not None:
                    async for broken in fault.midway(i, error_event, bad):
                        yield broken
                    if fault.ends_at(i):
                        return
                if i == cut_after:
                    return
                piece = word if i == 0 else " " + word
                # The first delta names the role, as OpenAI's do (the SDK's stream helpers need it).
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                yield _sse({**base, "object": "chat.completion.chunk", "choices": [choice]})
                served.chunks_sent += 1
                if behaviour.chunk_delay_s:
                    await asyncio.sleep(behaviour.chunk_delay_s)
            choice = {"index": 0, "delta": {}, "finish_reason": finish}
            yield _sse({**base, "object": "chat.completion.chunk", "choices": [choice]})
            if include_usage:
                yield _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"
            served.completed = True

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- Gemini ----------------------------------------------------------------------------
    async def _gemini(self, request: Request) -> Response:
        model, _, action = request.path_params["model_action"].partition(":")
        body = await request.json()
        stream = action == "streamGenerateContent"
        contents = body.get("contents", [])
        question = " ".join(p.get("text", "") for c in contents for p in c.get("parts", []))
        behaviour = self.behaviours.get(model, Behaviour())
        fault = behaviour.fault(question)
        served = self._log(Served("gemini", model, stream, question, 0, body=body, fault=fault and fault.kind))
        await asyncio.sleep(behaviour.delay(question))
        if behaviour.reject_key:
            served.status = 400
            key = request.headers.get("x-goog-api-key") or request.query_params.get("key", "")
            return _gemini_key_refused(key, behaviour.reject_key)
        status = fault.status if fault is not None else None
        contents = contents or [{}]
        if behaviour.reject_prefill and contents[-1].get("role") == "model":
            served.status = 400
            message = "double says 400: the last content must be the user's, not the model's"
            error = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
            return JSONResponse(error, status_code=400)
        if status:
            served.status = status
            headers = {"retry-after": fault.retry_after} if fault and fault.retry_after else {}
            error = {
                "error": {
                    "code": status,
                    "message": f"double says {status}",
                    "status": _GEMINI_STATUS.get(status, "UNKNOWN"),
                }
            }
            return JSONResponse(error, status_code=status, headers=headers)
        answer = self._answer(model, question)
        calls = self._calls(model, _gemini_tools(body))
        candidates = _arguments_words(calls) if calls else _words(answer)
        usage = {"promptTokenCount": _words(question), "candidatesTokenCount": candidates}
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        served.status = 200
        served.input_tokens, served.output_tokens = usage["promptTokenCount"], usage["candidatesTokenCount"]

        def candidate(text: str, finish: str | None) -> dict[str, Any]:
            c: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish:
                c["finishReason"] = finish
            return c

        if calls:
            # Gemini sends each call whole (no argument deltas), in one candidate, streamed or not.
            parts = [{"functionCall": {"name": name, "args": args}} for name, args in calls]
            called: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            whole = {"candidates": [{**called, "finishReason": "STOP"}], "usageMetadata": usage, "modelVersion": model}
            if not stream:
                served.completed = True
                return JSONResponse(whole)
            return StreamingResponse(_gemini_tool_events(served, fault, whole, called), media_type="text/event-stream")

        if not stream:
            served.completed = True
            return JSONResponse(
                {"candidates": [candidate(answer, "STOP")], "usageMetadata": usage, "modelVersion": model}
            )

        cut_after = None if fault is None else fault.cut_after
        failed = {"code": 500, "message": "double says 500 mid-stream", "status": "INTERNAL"}
        error_event = _sse({"error": failed}, sep=b"\r\n\r\n")
        bad = b'data: {"candidates": [{"content": {"parts": [{"text": "\r\n\r\n'

        async def events() -> AsyncIterator[bytes]:
            # Two pieces: the first half of the words, then the rest with the finish reason.
            words = answer.split(" ")
            half = max(1, len(words) // 2)
            pieces = [(" ".join(words[:half]), None), (" " + " ".join(words[half:]), "STOP")]
            for i, (text, finish) in enumerate(pieces):
                if fault is not None:
                    async for broken in fault.midway(i, error_event, bad):
                        yield broken
                    if fault.ends_at(i):
                        return
                if cut_after is not None and i == (0 if cut_after == 0 else 1):  # before any text, or halfway
                    return
                last: dict[str, Any] = {"usageMetadata": usage} if finish else {}
                yield _sse({"candidates": [candidate(text, finish)], **last, "modelVersion": model}, sep=b"\r\n\r\n")
                served.chunks_sent += 1
            served.completed = True

        return StreamingResponse(events(), media_type="text/event-stream")


def _openai_tool_answer(
    served: Served,
    behaviour: Behaviour,
    fault: Fault | None,
    base: dict[str, Any],
    calls: list[tuple[str, dict[str, Any]]],
    stream: bool,
    usage: dict[str, int],
    body: dict[str, Any],
) -> Response:
    """The tool calls as OpenAI sends them: whole in ``message.tool_calls``, or streamed as a
    chunk naming each call followed by its arguments' JSON in pieces, then ``finish_reason``."""
    ids = [f"call_{n}" for n in range(1, len(calls) + 1)]
    arguments = [json.dumps(args) for _, args in calls]
    if not stream:
        tool_calls = [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}
            for id_, (name, _), args in zip(ids, calls, arguments, strict=True)
        ]
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        served.completed = True
        return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    deltas: list[dict[str, Any]] = []
    for i, (id_, (name, _), args) in enumerate(zip(ids, calls, arguments, strict=True)):
        head = {"index": i, "id": id_, "type": "function", "function": {"name": name, "arguments": ""}}
        deltas.append({"role": "assistant", "tool_calls": [head]})
        deltas.extend({"tool_calls": [{"index": i, "function": {"arguments": p}}]} for p in _pieces(args))
    # A fault's cut counts deltas, as it counts words of a text answer; the default cut stops halfway
    # through the arguments, so the caller holds JSON that does not parse.
    cut_after = None if fault is None else fault.cut_after
    if cut_after == -1:
        cut_after = max(1, len(deltas) // 2)

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse({**base, "object": "chat.completion.chunk", "choices": [choice]})

    async def events() -> AsyncIterator[bytes]:
        for i, delta in enumerate(deltas):
            if i == cut_after:
                return
            yield chunk(delta, None)
            served.chunks_sent += 1
            if behaviour.chunk_delay_s:
                await asyncio.sleep(behaviour.chunk_delay_s)
        yield chunk({}, "tool_calls")
        if include_usage:
            yield _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
        served.completed = True

    return StreamingResponse(events(), media_type="text/event-stream")


async def _gemini_tool_events(
    served: Served, fault: Fault | None, whole: dict[str, Any], called: dict[str, Any]
) -> AsyncIterator[bytes]:
    """A streamed Gemini tool call: one chunk with the calls, finish reason and usage; a cut stream
    sends nothing (``cut_after=0``) or the calls without a finish reason."""
    cut_after = None if fault is None else fault.cut_after
    if cut_after == 0:
        return
    if cut_after is not None:
        yield _sse({"candidates": [called], "modelVersion": whole["modelVersion"]}, sep=b"\r\n\r\n")
        served.chunks_sent += 1
        return
    yield _sse(whole, sep=b"\r\n\r\n")
    served.chunks_sent += 1
    served.completed = True


def _openai_key_refused(authorization: str, how: str) -> Response:
    key = authorization.removeprefix("Bearer ")
    shown = key if how == "echo" else key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
    message = f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
    error = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    return JSONResponse(error, status_code=401)


def _gemini_key_refused(key: str, how: str) -> Response:
    told = f" ({key})" if how == "echo" else ""
    reason = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
    }
    message = f"API key not valid{told}. Please pass a valid API key."
    error = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": [reason]}}
    return JSONResponse(error, status_code=400)


def _within(answer: str, max_tokens: int | None) -> tuple[str, str]:
    """The answer cut to ``max_tokens`` (a word a token, as the double counts usage), and its
    finish reason: ``length`` when cut, as a provider stops at the request's limit."""
    words = answer.split(" ")
    if max_tokens and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return answer, "stop"


def _sse(data: dict[str, Any], sep: bytes = b"\n\n") -> bytes:
    return b"data: " + json.dumps(data).encode() + sep
