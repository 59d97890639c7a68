"""The issue's "done when", end to end: a live ``python server.py`` with one variable set,
``OTEL_EXPORTER_OTLP_ENDPOINT``, sends every request to Arize Phoenix as a trace with the GenAI
attributes and our causes; and Phoenix stopped mid-run costs no request, only counted spans.

Phoenix keeps spans in its own model (``tests.helpers.phoenix``): the OpenTelemetry span kinds are
checked against the protobuf receiver in ``tests/service/test_tracing.py``, not here.
"""

from __future__ import annotations

from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import openai

from benchmarks.load import metric_sum
from tests.helpers.apps import TEST_GOOGLE_KEY, TEST_OPENAI_KEY
from tests.helpers.phoenix import Phoenix, PhoenixSpan, running_phoenix
from tests.helpers.processes import eventually, server_process
from tests.helpers.provider_double import Behaviour, ProviderDouble

PRIMARY, SECOND = "gpt-4o-mini", "gemini-3.5-flash"


def _settings(double: ProviderDouble, phoenix: Phoenix) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": TEST_OPENAI_KEY,
        "OPENAI_BASE_URL": f"{double.url}/v1",
        "GOOGLE_API_KEY": TEST_GOOGLE_KEY,
        "GOOGLE_GEMINI_BASE_URL": double.url,
        "GEMINI_API_VERSION": "v1beta",
        "LLM_SERVER_RETRY_ATTEMPTS": "1",
        "LLM_SERVER_PRIMARY_TIMEOUT_S": "30",  # a loaded machine must not turn the 503 into a timeout
        "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.otlp_endpoint,  # the one variable
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # spans leave within 0.2 s, not the default 5 s
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
    }


def _named(spans: list[PhoenixSpan], prefix: str) -> list[PhoenixSpan]:
    return [span for span in spans if span["name"].startswith(prefix)]


def test_a_live_servers_requests_are_traces_in_phoenix_and_a_stopped_phoenix_costs_no_request(
    provider_double: ProviderDouble, tmp_path: Path
) -> None:
    provider_double.reset()
    provider_double.set(PRIMARY, Behaviour(fail_status=503))
    with ExitStack() as running:
        phoenix = running.enter_context(running_phoenix(tmp_path / "phoenix"))
        with server_process(tmp_path / "server", _settings(provider_double, phoenix)) as url:
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)
            raw = sdk.chat.completions.with_raw_response.create(
                model="fallback", messages=[{"role": "user", "content": "What is a circuit breaker?"}]
            )
            spans = phoenix.wait_for_spans(raw.headers["x-trace-id"], 4, timeout_s=60)
            calls = httpx.get(f"{url}/monitoring/calls", params={"request_id": raw.headers["x-request-id"]}).json()

            [server] = _named(spans, "POST /v1/chat/completions")
            [ladder] = _named(spans, "ladder fallback")
            failed, answered = _named(spans, "chat ")
            assert server["parent_id"] is None and ladder["parent_id"] == server["span_id"]
            assert failed["parent_id"] == answered["parent_id"] == ladder["span_id"]
            assert failed["attributes"]["gen_ai.request.model"] == PRIMARY
            assert failed["attributes"]["error.type"] == "server_error" and failed["status_code"] == "ERROR"
            assert answered["attributes"]["gen_ai.request.model"] == SECOND
            assert answered["attributes"]["gen_ai.provider.name"] == "gcp.gemini"
            assert answered["kind"] == "LLM", "Phoenix reads the GenAI conventions: a model call"
            assert ladder["attributes"]["llm_server.served.model"] == SECOND
            record = {r["metadata"]["span_id"]: r for r in calls["calls"]}[answered["span_id"]]
            assert answered["attributes"]["gen_ai.usage.input_tokens"] == record["input_tokens"]
            assert answered["attributes"]["gen_ai.usage.output_tokens"] == record["output_tokens"]
            assert Decimal(str(answered["attributes"]["llm_server.cost_usd"])) == Decimal(record["cost_usd"])

            running.close()  # Phoenix stops while the server runs
            answers = [
                httpx.post(f"{url}/chat/invoke", json={"input": {"question": f"Still there? {n}"}}, timeout=60)
                for n in range(3)
            ]
            assert [a.status_code for a in answers] == [200, 200, 200]

            def counted() -> bool:
                metrics = httpx.get(f"{url}/metrics").text
                return metric_sum(metrics, "llm_trace_spans_dropped_total", reason="export_failed") >= 9

            eventually(counted, "the 9 spans of 3 requests counted lost to a collector that is gone", 30)
