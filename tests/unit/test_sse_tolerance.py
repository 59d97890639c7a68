"""The filter under the OpenAI SDK (``providers.sse_tolerance``): events re-framed across reads and
line endings, bad ones dropped and counted, the limit; the guard's per-call tally; the causes."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterable

import httpx2
import openai
import pytest
from google.genai import errors as genai_errors
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from openai._streaming import SSEDecoder

from errors import Cause, ProviderError, classify
from providers.guard import Guard
from providers.sse_tolerance import BadChunkTally, EventFilter, active_tally, tolerate_bad_chunks
from vocabulary.run_metadata import BAD_CHUNKS


def event(data: dict | str, end: bytes = b"\n\n") -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return b"data: " + text.encode() + end


GOOD = [event({"choices": [{"delta": {"content": f" word{i}"}}]}) for i in range(4)]
BAD = b'data: {"choices": [{"delta": {"content": "\n\n'  # cut inside a string, as a broken proxy sends it
DONE = b"data: [DONE]\n\n"


def feed(reads: Iterable[bytes], limit: int = 10) -> tuple[list[bytes], BadChunkTally]:
    tally = BadChunkTally(limit, "gpt-4o-mini")
    events = EventFilter(tally)
    out = [events.feed(read) for read in reads]
    out.append(events.flush())
    return [piece for piece in out if piece], tally


def sdk_data(stream: bytes) -> list[str]:
    """What the OpenAI SDK's own decoder dispatches from ``stream``."""
    return [sse.data for sse in SSEDecoder().iter_bytes(iter([stream]))]


def reads_of(stream: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(stream)), k=min(len(stream) - 1, rng.randint(1, 12))))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


def test_good_events_pass_byte_for_byte_whatever_the_reads() -> None:
    stream = b"".join([*GOOD, DONE])
    for size in (1, 2, 7, 64, len(stream)):
        out, tally = feed(stream[i : i + size] for i in range(0, len(stream), size))
        assert b"".join(out) == stream
        assert tally.count == 0


def test_an_event_split_across_reads_is_held_until_its_blank_line() -> None:
    events = EventFilter(BadChunkTally(3, "m"))
    first, rest = GOOD[0][:20], GOOD[0][20:-1]

    assert events.feed(first) == b""
    assert events.feed(rest) == b""  # one newline of the two: not ended yet
    assert events.feed(b"\n") == GOOD[0]


def test_several_events_in_one_read_lose_only_the_bad_one() -> None:
    out, tally = feed([GOOD[0] + BAD + GOOD[1] + GOOD[2]])

    assert b"".join(out) == GOOD[0] + GOOD[1] + GOOD[2]
    assert tally.count == 1


@pytest.mark.parametrize("end", [b"\r\n\r\n", b"\r\n\n", b"\n\r\n", b"\r\r"], ids=["crlf", "crlf-lf", "lf-crlf", "cr"])
def test_events_end_at_any_blank_line(end: bytes) -> None:
    good = [g.replace(b"\n\n", end) for g in GOOD[:2]]
    bad = BAD.replace(b"\n\n", end)
    stream = good[0] + bad + good[1]

    out, tally = feed(stream[i : i + 3] for i in range(0, len(stream), 3))  # CR and LF of one end in two reads

    assert b"".join(out) == good[0] + good[1]
    assert tally.count == 1


def test_done_comments_and_multiline_data_pass_and_an_event_without_json_does_not() -> None:
    multiline = b'data: {"a":\ndata: 1}\n\n'  # the SDK joins data lines with a newline: valid JSON
    comment = b": keep-alive\n\n"
    named_only = b"event: ping\n\n"  # the SDK dispatches it with empty data, and json.loads("") fails
    spaced = b"data:  " + json.dumps({"a": 1}).encode() + b" \n\n"  # whitespace json.loads accepts
    out, tally = feed([multiline, comment, named_only, spaced, DONE])

    assert b"".join(out) == multiline + comment + spaced + DONE
    assert tally.count == 1


PING = b": ping\n\n"
WITH_ID = b'id: 8\ndata: {"a": 1}\n\n'
CLEAR_ID = b"id:\n\n"  # dispatches nothing, and clears the last id
# Events the SDK dispatches with data it cannot parse: an empty one, a bare id, a retry, a name.
UNPARSED = (BAD, b"data:\n\n", b"id: 7\n\n", b"retry: 5\n\n", b"event: ping\n\n")


def kept_by_the_sdks_rules(events: list[bytes]) -> list[bytes]:
    """The events that may reach the SDK: a comment dispatches (empty data) while a last id stands."""
    kept, last_id = [], False
    for e in events:
        if e in UNPARSED or (e == PING and last_id):
            continue
        last_id = {WITH_ID: True, CLEAR_ID: False}.get(e, last_id)
        kept.append(e)
    return kept


def test_what_passes_is_exactly_what_the_sdk_can_parse() -> None:
    rng = random.Random(17)
    pool = [*GOOD, PING, WITH_ID, CLEAR_ID, *UNPARSED]
    for _ in range(300):
        events = [rng.choice(pool) for _ in range(rng.randint(1, 10))]
        stream = b"".join([*events, DONE])
        out, tally = feed(reads_of(stream, rng), limit=len(events))

        kept = kept_by_the_sdks_rules(events)
        assert b"".join(out) == b"".join([*kept, DONE])
        assert tally.count == len(events) - len(kept)
        data = sdk_data(b"".join(out))
        assert data[-1] == "[DONE]"
        for item in data[:-1]:
            json.loads(item)  # the SDK would not raise


def test_the_event_past_the_limit_stops_the_read_there() -> None:
    events = EventFilter(tally := BadChunkTally(1, "m"))

    assert events.feed(GOOD[0] + BAD + GOOD[1] + BAD + GOOD[2]) == GOOD[0] + GOOD[1]
    assert tally.exceeded
    assert tally.error().cause is Cause.MALFORMED_STREAM


def test_an_unfinished_last_event_is_handed_on_as_is() -> None:
    out, tally = feed([GOOD[0], b'data: {"cut'])

    assert out == [GOOD[0], b'data: {"cut']  # the SDK never dispatches it
    assert tally.count == 0


# The hook, on httpx2 responses (the OpenAI SDK's client library), with an in-memory transport.


SSE = {"content-type": "text/event-stream; charset=utf-8"}


def sse_client(reads: list[bytes], headers: dict[str, str] = SSE, status: int = 200) -> httpx2.AsyncClient:
    async def body() -> AsyncIterator[bytes]:
        for read in reads:
            yield read

    def handler(_request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, content=body())

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler), event_hooks={"response": [tolerate_bad_chunks]})


async def read_all(client: httpx2.AsyncClient, tally: BadChunkTally | None) -> bytes:
    token = active_tally.set(tally)
    try:
        async with client.stream("GET", "http://provider/stream") as response:
            return b"".join([piece async for piece in response.aiter_bytes()])
    finally:
        active_tally.reset(token)


async def test_the_hook_filters_a_guarded_calls_stream() -> None:
    tally = BadChunkTally(3, "m")

    body = await read_all(sse_client([GOOD[0], BAD, GOOD[1]]), tally)

    assert body == GOOD[0] + GOOD[1]
    assert tally.count == 1


async def test_the_hook_breaks_a_stream_past_the_limit_after_the_good_events_before_it() -> None:
    tally = BadChunkTally(1, "gpt-4o-mini")
    pieces: list[bytes] = []

    token = active_tally.set(tally)
    try:
        async with sse_client([GOOD[0], BAD + GOOD[1] + BAD, GOOD[2]]).stream("GET", "http://p/s") as response:
            with pytest.raises(ProviderError) as raised:
                async for piece in response.aiter_bytes():
                    pieces.append(piece)
    finally:
        active_tally.reset(token)

    assert raised.value.cause is Cause.MALFORMED_STREAM
    assert "gpt-4o-mini sent 2 stream chunks that are not JSON" in str(raised.value)
    assert b"".join(pieces) == GOOD[0] + GOOD[1]


@pytest.mark.parametrize(
    ("tally", "headers", "status"),
    [
        (None, SSE, 200),  # no guarded call: nobody to count for
        (BadChunkTally(0, "m"), {"content-type": "application/json"}, 200),
        (BadChunkTally(0, "m"), {**SSE, "content-encoding": "gzip"}, 200),
        (BadChunkTally(0, "m"), SSE, 503),  # the SDK reads an error's body whole, for its status error
    ],
    ids=["no-tally", "not-sse", "compressed", "error-status"],
)
async def test_the_hook_leaves_other_responses_alone(
    tally: BadChunkTally | None, headers: dict[str, str], status: int
) -> None:
    reads = [GOOD[0], BAD]
    client = sse_client(reads, headers, status)
    token = active_tally.set(tally)
    try:
        async with client.stream("GET", "http://provider/stream") as response:
            body = b"".join([piece async for piece in response.aiter_raw()])
    finally:
        active_tally.reset(token)

    assert body == b"".join(reads)


# The guard: one tally per call, set around each step of the model's stream; its count on the last chunk.


def chunk(text: str, finish: str | None = None) -> ChatGenerationChunk:
    info = {"finish_reason": finish} if finish else None
    return ChatGenerationChunk(message=AIMessageChunk(content=text), generation_info=info)


async def provider(skips: int, seen: list[BadChunkTally | None]) -> AsyncIterator[ChatGenerationChunk]:
    """A model stream that skips ``skips`` events before its last chunk, as the hook would."""
    seen.append(active_tally.get())
    yield chunk("Hello")
    tally = active_tally.get()
    seen.append(tally)
    if tally is not None:
        tally.count += skips
    yield chunk(" world", "stop")


async def test_the_guard_gives_each_call_its_tally_and_puts_the_count_on_the_last_chunk() -> None:
    guard = Guard("openai", "gpt-4o-mini", max_bad_chunks=3)
    seen: list[BadChunkTally | None] = []

    chunks = [c async for c in guard.stream(provider(2, seen))]
    again = [c async for c in guard.stream(provider(0, seen))]

    assert chunks[-1].generation_info == {"finish_reason": "stop", BAD_CHUNKS: 2}
    assert again[-1].generation_info == {"finish_reason": "stop"}, "counted only when > 0"
    assert seen[0] is seen[1] and seen[2] is seen[3] and seen[0] is not seen[2]
    assert active_tally.get() is None, "reset after every step"


async def test_a_guard_without_a_limit_sets_no_tally() -> None:
    seen: list[BadChunkTally | None] = []

    chunks = [c async for c in Guard("gemini", "gemini-3.5-flash").stream(provider(1, seen))]

    assert seen == [None, None]
    assert BAD_CHUNKS not in (chunks[-1].generation_info or {})


# The causes of what the SDKs raise.


def test_a_stream_event_that_does_not_parse_is_a_malformed_stream() -> None:
    try:
        json.loads('{"choices": [{"delta": {"content": "')
    except json.JSONDecodeError as exc:
        decode_error = exc
    assert classify(decode_error) is Cause.MALFORMED_STREAM
    try:
        raise genai_errors.UnknownApiResponseError("Failed to parse response as JSON") from decode_error
    except genai_errors.UnknownApiResponseError as exc:
        assert classify(exc) is Cause.MALFORMED_STREAM


def test_an_error_event_mid_stream_is_a_server_error() -> None:
    request = httpx2.Request("POST", "http://provider/v1/chat/completions")
    error = openai.APIError("double says 500 mid-stream", request, body={"message": "double says 500 mid-stream"})

    assert classify(error) is Cause.SERVER_ERROR
