"""Plain LangServe, as a user would write it: FastAPI, ``add_routes`` and one chain (a prompt, a
ChatOpenAI with a ``with_fallbacks`` backup, a string parser), served by uvicorn with one worker.
The yardstick ``benchmarks/framework_cpu.py`` holds our server against.

It takes the settings of ours that change the work per request (``stream_usage=True``, no SDK
retries, the same timeout and temperature) and nothing else: no keys, no policy, no monitoring.
``--streaming`` builds the models with ``streaming=True``, as ours does (an invoke then reads the
provider's stream), to tell that choice's cost from the rest.

    OPENAI_BASE_URL=http://127.0.0.1:9000/v1 OPENAI_API_KEY=sk-... \\
        .venv/bin/python benchmarks/plain_langserve.py [--port 8001] [--streaming]
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fastapi import FastAPI
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from langserve import add_routes

TIMEOUT_S = 30.0  # ours: LLM_SERVER_PROVIDER_TIMEOUT_S
TEMPERATURE = 0.7  # ours: LLM_SERVER_DEFAULT_TEMPERATURE


def chat_model(model: str, base_url: str | None, api_key: str | None, streaming: bool) -> ChatOpenAI:
    # Passed only when asked: an explicit streaming=False turns streaming off on /stream too.
    chosen = {"streaming": True} if streaming else {}
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=api_key,
        timeout=TIMEOUT_S,
        max_retries=0,
        temperature=TEMPERATURE,
        stream_usage=True,
        **chosen,
    )


def create_app(base_url: str | None = None, api_key: str | None = None, streaming: bool = False) -> FastAPI:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    model = chat_model("gpt-4o-mini", base_url, api_key, streaming).with_fallbacks(
        [chat_model("gpt-4o", base_url, api_key, streaming)]
    )
    app = FastAPI(title="plain LangServe")
    add_routes(app, prompt | model | StrOutputParser(), path="/chat")
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    parser.add_argument("--streaming", action="store_true", help="build the models with streaming=True, as ours")
    # Ours keeps idle connections 65 s and logs at warning in the benchmarks: the same here.
    parser.add_argument("--keep-alive", type=int, default=65, help="seconds an idle connection stays open")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    app = create_app(args.base_url, args.api_key, args.streaming)
    uvicorn.run(
        app, host=args.host, port=args.port, workers=1, timeout_keep_alive=args.keep_alive, log_level=args.log_level
    )


if __name__ == "__main__":
    main()
