"""The OpenAI (and Azure OpenAI) and Gemini chat models with the guards of ``providers.guard`` in front: request
deadline, first-token deadline, stalled and cut streams, injected faults."""

from __future__ import annotations

from typing import Any

from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import AzureChatOpenAI, ChatOpenAI

from providers.guard import GuardedStream
from providers.raw_stream import RawStreamRead


class GuardedChatOpenAI(RawStreamRead, ChatOpenAI):
    """An invoke reads the provider's stream itself (``providers.raw_stream``)."""


class GuardedAzureChatOpenAI(GuardedStream, AzureChatOpenAI):
    pass


class GuardedChatGoogleGenerativeAI(GuardedStream, ChatGoogleGenerativeAI):
    def provider_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's names for Gemini's: ``max_output_tokens``; a named ``tool_choice`` as the
        function's name; ``response_format`` as a JSON MIME type and schema. Gemini has no switch
        for parallel tool calls."""
        options = dict(options)
        options.pop("parallel_tool_calls", None)
        if "max_tokens" in options:
            options["max_output_tokens"] = options.pop("max_tokens")
        choice = options.get("tool_choice")
        if isinstance(choice, dict):
            options["tool_choice"] = choice["function"]["name"]
        response_format = options.pop("response_format", None)
        if response_format is not None:
            options["response_mime_type"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if schema is not None:
                options["response_json_schema"] = schema
        return options
