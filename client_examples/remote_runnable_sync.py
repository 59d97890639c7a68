"""RemoteRunnable, synchronous: invoke, stream and batch with configurable, tags and metadata.

Shows how a client picks the model, prompt style and temperature per request, tags the call and
passes its own user and session ids, which the server's monitoring records.

    python client_examples/remote_runnable_sync.py [SERVER_URL]    (default http://127.0.0.1:8000)
"""

from __future__ import annotations

import os
import sys

import httpx
from langserve import RemoteRunnable
from retrying import explain, with_retries

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVER_URL", "http://127.0.0.1:8000")
TIMEOUT_S = 120.0  # per request: the local model on 2 cores needs seconds for a long answer


def main() -> None:
    # RemoteRunnable has no timeout by default: always set one.
    chat = RemoteRunnable(f"{URL}/chat/", timeout=TIMEOUT_S)
    config = {
        "configurable": {"llm_model": "local", "prompt_style": "concise", "llm_temperature": 0.2},
        "tags": ["client-example", "sync"],
        "metadata": {"user_id": "user_001", "session_id": "session_123"},
    }
    try:
        # 429 and 503 say when to come back: wait as told, a few times, then give up.
        answer = with_retries(lambda: chat.invoke({"question": "What is a fallback in software?"}, config=config))
        print("invoke:", answer)

        print("stream: ", end="", flush=True)
        for chunk in chat.stream({"question": "Name three colours."}, config=config):
            print(chunk, end="", flush=True)
        print()

        answers = chat.batch(
            [{"question": "What is Python?"}, {"question": "인공지능이란 무엇인가요?"}],
            config=config,
        )
        for i, item in enumerate(answers):
            print(f"batch[{i}]:", item)
    except httpx.HTTPStatusError as error:
        sys.exit(f"the server refused: {explain(error)}")
    except httpx.TimeoutException:
        sys.exit(f"no answer within {TIMEOUT_S:g}s; the server may be overloaded")
    finally:
        chat.sync_client.close()


if __name__ == "__main__":
    main()
