"""RemoteRunnable, asynchronous: ainvoke, astream and abatch against the fallback ladder.

Also shows how to close the client inside the event loop (LangServe's RemoteRunnable otherwise
prints a traceback at interpreter exit) and what a 503 from an exhausted ladder looks like.

    python client_examples/remote_runnable_async.py [SERVER_URL]    (default http://127.0.0.1:8000)
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from langserve import RemoteRunnable

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVER_URL", "http://127.0.0.1:8000")


async def main() -> None:
    fallback = RemoteRunnable(f"{URL}/fallback/", timeout=120.0)
    config = {"tags": ["client-example", "async"], "metadata": {"user_id": "user_002", "session_id": "s-9"}}
    try:
        try:
            answer = await fallback.ainvoke({"question": "Why use a fallback ladder?"}, config=config)
            print("ainvoke:", answer)
        except httpx.HTTPStatusError as exc:
            # 503: every model failed; the body lists each attempt and Retry-After says when to retry.
            print("ainvoke failed:", exc.response.status_code, exc.response.headers.get("retry-after"))
            raise

        print("astream: ", end="", flush=True)
        async for chunk in fallback.astream({"question": "Say hello."}, config=config):
            print(chunk, end="", flush=True)
        print()

        answers = await fallback.abatch([{"question": "What is 2 + 2?"}, {"question": "What is Redis?"}], config=config)
        for i, item in enumerate(answers):
            print(f"abatch[{i}]:", item)
    finally:
        await fallback.async_client.aclose()
        fallback.sync_client.close()


if __name__ == "__main__":
    asyncio.run(main())
