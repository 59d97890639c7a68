"""The official ``openai`` SDK against the server's OpenAI-compatible API: only the base URL changes.

Shows a sync answer with its usage and the model that served it (the body's ``model`` and the
``X-Served-By`` header), an async one, and a stream with ``stream_options={"include_usage": True}``
that prints the text as it comes and the usage at the end. The answer's ``id`` is the run id
``POST /feedback`` takes.

The key is ``LLM_SERVER_API_KEY`` (the SDK sends it as ``Authorization: Bearer``); an open server
needs none, but the SDK insists on one, so a placeholder goes. The SDK itself waits out a 429 or a
503 as its ``Retry-After`` says (``max_retries``). ``--model`` picks the name (``GET /v1/models``
lists yours); the default, ``local``, answers with no provider keys. Exits non-zero when the
server refuses, does not answer in time, or an answer lacks its usage.

    python client_examples/openai_sdk.py [SERVER_URL] [--model local]    (default http://127.0.0.1:8000)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import openai
from openai import AsyncOpenAI, OpenAI

DEFAULT_URL = os.environ.get("LLM_SERVER_URL") or os.environ.get("SERVER_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("LLM_SERVER_API_KEY") or "open-server"  # any string will do on an open server
TIMEOUT_S = 120.0  # per request: the local model on 2 cores needs seconds for a long answer
MAX_RETRIES = 3  # the SDK retries 429 and 5xx, waiting as Retry-After says


def refused(error: openai.APIStatusError) -> str:
    """The server's message; for an exhausted ladder (503) each model's cause too."""
    body: dict[str, Any] = error.body if isinstance(error.body, dict) else {}
    attempts = "; ".join(f"{a.get('model')}: {a.get('cause')}" for a in body.get("attempts", []))
    return f"{error.status_code} {body.get('code')}: {body.get('message')}" + (f" ({attempts})" if attempts else "")


def tokens(usage: Any, where: str) -> str:
    """The usage in a line, or exit: an answer without its usage is something wrong."""
    if usage is None or usage.total_tokens <= 0:
        sys.exit(f"{where}: the answer came without its token usage")
    return f"{usage.prompt_tokens} in, {usage.completion_tokens} out, {usage.total_tokens} total"


def sync_answer(url: str, model: str) -> None:
    with OpenAI(base_url=f"{url}/v1", api_key=KEY, timeout=TIMEOUT_S, max_retries=MAX_RETRIES) as client:
        models = [card.id for card in client.models.list()]
        print("models:", ", ".join(models))
        # with_raw_response: the parsed answer and the headers that say which model answered.
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=[
                {"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": "What is a fallback in software?"},
            ],
            max_tokens=64,
            user="user_001",
        )
        answer = raw.parse()
        print("sync:", answer.choices[0].message.content)
        headers = raw.headers
        print(f"  model: {answer.model}; x-served-by: {headers.get('x-served-by')},", end=" ")
        print(f"x-fallback-rung: {headers.get('x-fallback-rung')}, x-attempts: {headers.get('x-attempts')}")
        print(f"  run id (for POST /feedback): {answer.id}; x-request-id: {headers.get('x-request-id')}")
        print(f"  finish: {answer.choices[0].finish_reason}; usage: {tokens(answer.usage, 'sync')}")


async def async_answer(url: str, model: str) -> None:
    async with AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, timeout=TIMEOUT_S, max_retries=MAX_RETRIES) as client:
        answer = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Name three colours."}], max_tokens=64
        )
        print("async:", answer.choices[0].message.content)
        print(f"  model: {answer.model}; usage: {tokens(answer.usage, 'async')}")


def streamed_answer(url: str, model: str) -> None:
    with OpenAI(base_url=f"{url}/v1", api_key=KEY, timeout=TIMEOUT_S, max_retries=MAX_RETRIES) as client:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},  # a last chunk with no choices carries the usage
        )
        usage, finish, served = None, None, None
        print("stream: ", end="", flush=True)
        with stream:  # closes the connection even if we stop reading early
            for chunk in stream:
                served = chunk.model
                if chunk.choices:
                    print(chunk.choices[0].delta.content or "", end="", flush=True)
                    finish = chunk.choices[0].finish_reason or finish
                if chunk.usage is not None:
                    usage = chunk.usage
        print()
        # A stream that broke off raises openai.APIError from its error event: no [DONE], no finish.
        if finish is None:
            sys.exit("stream: it ended without a finish reason")
        print(f"  model: {served}; finish: {finish}; usage: {tokens(usage, 'stream')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help="the server (default %(default)s)")
    parser.add_argument("--model", default="local", help="a name from GET /v1/models (default %(default)s)")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    try:
        sync_answer(url, args.model)
        asyncio.run(async_answer(url, args.model))
        streamed_answer(url, args.model)
    except openai.APIStatusError as error:  # 400, 401, 403, 404, 413; 429 and 503 after the retries
        sys.exit(f"the server refused: {refused(error)}")
    except openai.APITimeoutError:
        sys.exit(f"no answer within {TIMEOUT_S:g}s; the server may be overloaded")
    except openai.APIConnectionError as error:
        sys.exit(f"could not reach {url}: {error}")
    except openai.APIError as error:  # a stream's error event (the stream broke off)
        sys.exit(f"the stream failed: {error.message}")


if __name__ == "__main__":
    main()
