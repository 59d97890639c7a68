"""RemoteRunnable, asynchronous: ainvoke, astream and abatch against the fallback ladder.

Also shows how to close the client inside the event loop (LangServe's RemoteRunnable otherwise
prints a traceback at interpreter exit) and how to wait out a 503 from an exhausted ladder.

    python client_examples/remote_runnable_async.py [SERVER_URL]    (default http://127.0.0.1:8000)
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from langserve import RemoteRunnable
from retrying import awith_retries, explain

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVER_URL", "http://127.0.0.1:8000")
TIMEOUT_S = 120.0


async def main() -> None:
    fallback = RemoteRunnable(f"{URL}/fallback/", timeout=TIMEOUT_S)  # there is none by default
    config = {"tags": ["client-example", "async"], "metadata": {"user_id": "user_002", "session_id": "s-9"}}
    try:
        # 503: every model failed; Retry-After says when to come back (429 likewise).
        question = {"question": "Why use a fallback ladder?"}
        answer = await awith_retries(lambda: fallback.ainvoke(question, config=config))
        print("ainvoke:", answer)

        print("astream: ", end="", flush=True)
        async for chunk in fallback.astream({"question": "Say hello."}, config=config):
            print(chunk, end="", flush=True)
        print()

        answers = await fallback.abatch([{"question": "What is 2 + 2?"}, {"question": "What is Redis?"}], config=config)
        for i, item in enumerate(answers):
            print(f"abatch[{i}]:", item)
    except httpx.HTTPStatusError as error:
        sys.exit(f"the server refused: {explain(error)}")  # the 503's body lists each model's cause
    except httpx.TimeoutException:
        sys.exit(f"no answer within {TIMEOUT_S:g}s; the server may be overloaded")
    finally:
        await fallback.async_client.aclose()
        fallback.sync_client.close()


if __name__ == "__main__":
    asyncio.run(main())
