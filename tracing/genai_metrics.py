"""``GenAIMetrics``: the GenAI conventions' client metrics, made from call records and exported
over OTLP beside the Prometheus endpoint (which stays):

- ``gen_ai.client.token.usage`` (``{token}``, one value per token type, input and output);
- ``gen_ai.client.operation.duration`` (``s``; ``error.type`` set to the cause on a failed call);
- ``gen_ai.client.operation.time_to_first_chunk`` (``s``), for calls that streamed.

The buckets are the ones the conventions recommend. An answer from the response cache called no
model and is not counted. State: the SDK's instruments, safe from any thread.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
    GEN_AI_CLIENT_TOKEN_USAGE,
)

from tracing import genai
from vocabulary import Outcome
from vocabulary.records import CallRecord

TOKEN_BUCKETS = [4.0**n for n in range(14)]  # 1, 4, 16, ... 67108864
SECONDS_BUCKETS = [0.01 * 2**n for n in range(14)]  # 0.01, 0.02, 0.04, ... 81.92


class GenAIMetrics:
    def __init__(self, meter: Meter):
        self.tokens = meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed answer.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

    def observe(self, record: CallRecord) -> None:
        if record.outcome is Outcome.CACHED:
            return
        attributes: dict[str, Any] = {
            genai.GEN_AI_OPERATION_NAME: genai.CHAT,
            genai.GEN_AI_PROVIDER_NAME: genai.provider_name(record.provider),
            genai.GEN_AI_REQUEST_MODEL: record.model,
        }
        if record.outcome is not Outcome.OK:
            attributes[genai.ERROR_TYPE] = record.cause or record.outcome.value
        self.duration.record(record.duration_s, attributes)
        if record.first_token_s is not None:
            self.first_chunk.record(record.first_token_s, attributes)
        if record.input_tokens or record.output_tokens:
            self.tokens.record(record.input_tokens, {**attributes, genai.GEN_AI_TOKEN_TYPE: "input"})
            self.tokens.record(record.output_tokens, {**attributes, genai.GEN_AI_TOKEN_TYPE: "output"})
