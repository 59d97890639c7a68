"""Adaptive routing with an API key: ask with ``llm_model=auto``, see which model answered and
why, and tell the router what you thought of the answer.

Sends the key in ``X-API-Key`` when ``LLM_SERVER_API_KEY`` is set (an open server needs none),
and waits out a 429 or a 503 as its ``Retry-After`` says (see retrying.py).

    LLM_SERVER_API_KEY=lsk_... python client_examples/adaptive.py [SERVER_URL]    (default http://127.0.0.1:8000)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
from retrying import explain, with_retries

URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SERVER_URL", "http://127.0.0.1:8000")
KEY = os.environ.get("LLM_SERVER_API_KEY")


def post(http: httpx.Client, path: str, payload: dict[str, Any]) -> httpx.Response:
    def send() -> httpx.Response:
        response = http.post(path, json=payload)
        response.raise_for_status()
        return response

    try:
        return with_retries(send)  # waits out a 429 or 503 as its Retry-After says
    except httpx.HTTPStatusError as error:
        sys.exit(explain(error))  # 401, 403, 422: the message says what to fix


def main() -> None:
    headers = {"X-API-Key": KEY} if KEY else {}
    with httpx.Client(base_url=URL, headers=headers, timeout=120.0) as http:
        for question in ("Why does my Python dict raise KeyError?", "hi! how's your day going?"):
            payload = {"input": {"question": question}, "config": {"configurable": {"llm_model": "auto"}}}
            answer = post(http, "/chat/invoke", payload)
            run_id = answer.json()["metadata"]["run_id"]
            calls = http.get("/monitoring/calls", params={"run_id": run_id}).json()["calls"]
            routing = next(c for c in calls if c["outcome"] == "ok")["metadata"]["routing"]
            print(f"question: {question}")
            print(f"  answered by: {answer.headers['x-served-by']}")
            print(f"  why: {routing['model_reason']}")
            print(f"  temperature: {routing['temperature']} ({routing['temperature_reason']})")
            learned = post(http, "/feedback", {"run_id": run_id, "score": 1.0}).json()["learned"]
            print(f"  feedback: noted for {learned['alternative']} on {learned['question_type']} questions")


if __name__ == "__main__":
    main()
