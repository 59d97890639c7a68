"""Reading token usage and answer text out of an ``LLMResult``, the way providers report it now.

Usage lives in ``AIMessage.usage_metadata`` (streamed usage included); ``llm_output`` is only a
fallback for older integrations and is often ``None``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.outputs import ChatGeneration, LLMResult

from monitoring.pricing import Usage


def usage_of(response: LLMResult) -> Usage:
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                meta = getattr(generation.message, "usage_metadata", None)
                if meta:
                    inputs: dict[str, Any] = dict(meta.get("input_token_details") or {})
                    outputs: dict[str, Any] = dict(meta.get("output_token_details") or {})
                    return Usage(
                        input_tokens=int(meta.get("input_tokens", 0)),
                        output_tokens=int(meta.get("output_tokens", 0)),
                        cached_input_tokens=int(inputs.get("cache_read", 0) or 0),
                        reasoning_tokens=int(outputs.get("reasoning", 0) or 0),
                    )
    legacy = (response.llm_output or {}).get("token_usage") or {}
    return Usage(
        input_tokens=int(legacy.get("prompt_tokens", 0) or 0),
        output_tokens=int(legacy.get("completion_tokens", 0) or 0),
    )


def answer_of(response: LLMResult) -> str:
    for generations in response.generations:
        for generation in generations:
            return generation.text or ""
    return ""


def model_of(response: LLMResult) -> str | None:
    """The model the provider says answered (a dated snapshot name, for example)."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                name = generation.message.response_metadata.get("model_name")
                if name:
                    return str(name)
    return None


def finish_reasons_of(response: LLMResult) -> tuple[str, ...]:
    """Why each generation ended, as the provider said (``stop``, ``length``, ``tool_calls``...)."""
    reasons = []
    for generations in response.generations:
        for generation in generations:
            info = generation.generation_info or {}
            reason = info.get("finish_reason")
            if reason is None and isinstance(generation, ChatGeneration):
                reason = generation.message.response_metadata.get("finish_reason")
            if reason:
                reasons.append(str(reason))
    return tuple(reasons)


def response_id_of(response: LLMResult) -> str | None:
    """The provider's id of its answer, when it gave one."""
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                # LangChain names a message it assembled ``run-...``/``lc_run-...``: not the provider's id.
                value = generation.message.response_metadata.get("id") or generation.message.id
                if value and not str(value).startswith(("run-", "lc_run-")):
                    return str(value)
    return None
