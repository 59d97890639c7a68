"""LangChain's ``ChatOpenAI`` pointed at the server's OpenAI-compatible API (``base_url=.../v1``):
invoke and stream, printing each answer's ``usage_metadata`` and the model that served it
(``response_metadata["model_name"]``).

Any LangChain code written for ``ChatOpenAI`` runs on the fallback ladders this way: ``model``
names one of the server's models (``GET /v1/models``), and the key is ``LLM_SERVER_API_KEY`` (an
open server needs none, so a placeholder goes). ``--model`` picks the name; the default, ``local``,
answers with no provider keys. The client waits out a 429 or a 503 as its ``Retry-After`` says
(``max_retries``), and exits non-zero when the server refuses, does not answer in time, or an
answer lacks its usage.

    python client_examples/langchain_chat_openai.py [SERVER_URL] [--model local]    (default http://127.0.0.1:8000)
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx
import openai
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

DEFAULT_URL = os.environ.get("LLM_SERVER_URL") or os.environ.get("SERVER_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("LLM_SERVER_API_KEY") or "open-server"  # any string will do on an open server
TIMEOUT_S = 120.0  # per request: the local model on 2 cores needs seconds for a long answer


def report(answer: AIMessage, where: str) -> None:
    usage = answer.usage_metadata
    if not usage or usage["total_tokens"] <= 0:
        sys.exit(f"{where}: the answer came without its token usage")
    print(f"  model_name: {answer.response_metadata.get('model_name')}")
    print(f"  usage_metadata: {usage}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help="the server (default %(default)s)")
    parser.add_argument("--model", default="local", help="a name from GET /v1/models (default %(default)s)")
    args = parser.parse_args()
    url = args.url.rstrip("/")

    http = httpx.Client(timeout=TIMEOUT_S)  # our own client, so we can close it
    llm = ChatOpenAI(
        base_url=f"{url}/v1",
        api_key=KEY,
        model=args.model,
        max_tokens=64,
        timeout=TIMEOUT_S,
        max_retries=3,
        stream_usage=True,  # asks for the usage chunk at the end of a stream (off for a custom base_url)
        http_client=http,
    )
    messages = [SystemMessage("Answer in one sentence."), HumanMessage("What is a circuit breaker?")]
    try:
        answer = llm.invoke(messages)
        print("invoke:", answer.text)
        print(f"  response_metadata['id'] (the run id for POST /feedback): {answer.response_metadata.get('id')}")
        report(answer, "invoke")

        print("stream: ", end="", flush=True)
        whole: AIMessageChunk | None = None
        for chunk in llm.stream([HumanMessage("Name a fruit.")]):
            print(chunk.text, end="", flush=True)
            whole = chunk if whole is None else whole + chunk
        print()
        if whole is None:
            sys.exit("stream: no chunks")
        report(whole, "stream")
    except openai.APIStatusError as error:  # 400, 401, 403, 404, 413; 429 and 503 after the retries
        body = error.body if isinstance(error.body, dict) else {}
        sys.exit(f"the server refused: {error.status_code} {body.get('code')}: {body.get('message')}")
    except openai.APITimeoutError:
        sys.exit(f"no answer within {TIMEOUT_S:g}s; the server may be overloaded")
    except openai.APIConnectionError as error:
        sys.exit(f"could not reach {url}: {error}")
    except openai.APIError as error:  # a stream's error event (the stream broke off)
        sys.exit(f"the stream failed: {error.message}")
    finally:
        http.close()


if __name__ == "__main__":
    main()
