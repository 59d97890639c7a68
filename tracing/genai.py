"""The names spans and metrics carry, each spelled once: the GenAI semantic conventions' (from
``opentelemetry-semantic-conventions``, which tracks the conventions as they change) and ours,
under ``llm_server.``, for what the conventions have no name for (rung, breaker, cost, tier, the
policy's decision). Trace tools group and filter by these strings, so they never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    GEN_AI_WORKFLOW_NAME,
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from vocabulary.models import GEMINI_PROVIDER, LOCAL_PROVIDER, OPENAI_PROVIDER

__all__ = [
    "ERROR_TYPE",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
]

CHAT: Final = GenAiOperationNameValues.CHAT.value  # one model call
WORKFLOW: Final = GenAiOperationNameValues.INVOKE_WORKFLOW.value  # a ladder: several calls, one answer

# Our providers by the conventions' names; the embedded llama.cpp model has none of its own.
_PROVIDERS: Final = {
    OPENAI_PROVIDER: GenAiProviderNameValues.OPENAI.value,
    GEMINI_PROVIDER: GenAiProviderNameValues.GCP_GEMINI.value,
    LOCAL_PROVIDER: "llama_cpp",
}


def provider_name(provider: str) -> str:
    """``gen_ai.provider.name`` for one of our providers (an unknown one as it is called)."""
    return _PROVIDERS.get(provider, provider)


PREFIX: Final = "llm_server."

# On every span of ours: which request and route
REQUEST_ID: Final = "llm_server.request_id"
ROUTE: Final = "llm_server.route"
TIER: Final = "llm_server.tier"

# Where a call stands in its ladder, and what it was
LADDER: Final = "llm_server.ladder"
RUNG: Final = "llm_server.rung"  # 0 is the first choice
ALTERNATIVE: Final = "llm_server.alternative"
DEPLOYMENT: Final = "llm_server.deployment"
BREAKER_STATE: Final = "llm_server.breaker.state"  # the deployment's breaker when the call started
COST_USD: Final = "llm_server.cost_usd"
OUTCOME: Final = "llm_server.outcome"
RUN_ID: Final = "llm_server.run_id"
USAGE_ESTIMATED: Final = "llm_server.usage_estimated"  # input tokens estimated: the call was cut short
CONTINUES: Final = "llm_server.continues"  # the model whose broken answer this call continues
CAUSE: Final = "llm_server.cause"
DETAIL: Final = "llm_server.detail"

# What the ladder decided
ROUTING: Final = "llm_server.routing"  # + ".model", ".model_reason", ... : the request policy's decision
CACHE: Final = "llm_server.cache"  # the response cache's hit, miss or bypass
SERVED_MODEL: Final = "llm_server.served.model"
SERVED_RUNG: Final = "llm_server.served.rung"
ATTEMPTS: Final = "llm_server.attempts"  # model calls the answer took
WAIT_S: Final = "llm_server.wait_s"
TRY: Final = "llm_server.try"
FORM: Final = "llm_server.form"
AT_CHAR: Final = "llm_server.at_char"

# Events
FIRST_TOKEN: Final = "llm_server.first_token"
RETRY: Final = "llm_server.retry"
SKIP: Final = "llm_server.skip"  # a rung passed over without a call: breaker open, deadline, budget...
CONTINUATION: Final = "llm_server.continuation"

CANCELLED: Final = "cancelled"  # error.type of a run the client left


def flat(prefix: str, values: Mapping[str, Any]) -> dict[str, str | bool | int | float]:
    """``values`` as span attributes under ``prefix``: None dropped, anything not a plain value as text."""
    attributes: dict[str, str | bool | int | float] = {}
    for key, value in values.items():
        if value is None:
            continue
        attributes[f"{prefix}.{key}"] = value if isinstance(value, str | bool | int | float) else str(value)
    return attributes
