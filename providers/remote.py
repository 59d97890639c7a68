"""The OpenAI and Gemini chat models with the guards of ``providers.guard`` in front: request
deadline, first-token deadline, stalled and cut streams, injected faults."""

from __future__ import annotations

from typing import Any

from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from providers.guard import GuardedStream


class GuardedChatOpenAI(GuardedStream, ChatOpenAI):
    pass


class GuardedChatGoogleGenerativeAI(GuardedStream, ChatGoogleGenerativeAI):
    def provider_options(self, options: dict[str, Any]) -> dict[str, Any]:
        if "max_tokens" in options:
            options = {**options, "max_output_tokens": options["max_tokens"]}
            del options["max_tokens"]
        return options
