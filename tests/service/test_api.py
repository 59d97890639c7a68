"""The HTTP contract: config checks, input errors, metadata reaching the callbacks, operations."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.provider_double import ProviderDouble

QUESTION = {"question": "What is LangServe?"}


@pytest.mark.parametrize("endpoint", ["invoke", "stream"])
async def test_unknown_configurable_id_is_422_naming_the_valid_ids(
    shared_client: httpx.AsyncClient, endpoint: str
) -> None:
    payload = {"input": QUESTION, "config": {"configurable": {"temp": 0.5}}}

    response = await shared_client.post(f"/chat/{endpoint}", json=payload)

    assert response.status_code == 422
    body = response.json()
    assert body["unknown"] == ["temp"]
    assert body["allowed"] == ["llm_model", "llm_temperature", "prompt_style"]
    assert "llm_temperature" in body["message"]


async def test_unknown_configurable_id_in_a_batch_config_list_is_422(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    payload = {
        "inputs": [QUESTION, QUESTION],
        "config": [{"configurable": {"llm_model": "gpt4"}}, {"configurable": {"user_id": "u1"}}],
    }

    response = await shared_client.post("/chat/batch", json=payload)

    assert response.status_code == 422
    body = response.json()
    assert body["unknown"] == ["user_id"]
    assert body["allowed"] == ["llm_model", "llm_temperature", "prompt_style"]
    assert "user_id" in body["message"]
    assert double.served == [], "nothing may run when any item is invalid"


@pytest.mark.parametrize("value", [2.5, -0.1, "hot", True])
async def test_temperature_outside_0_to_2_is_422(shared_client: httpx.AsyncClient, value: object) -> None:
    payload = {"input": QUESTION, "config": {"configurable": {"llm_temperature": value}}}

    response = await shared_client.post("/chat/invoke", json=payload)

    assert response.status_code == 422
    assert "llm_temperature" in response.json()["message"]


async def test_unknown_model_alternative_is_422_listing_the_alternatives(shared_client: httpx.AsyncClient) -> None:
    payload = {"input": QUESTION, "config": {"configurable": {"llm_model": "claude"}}}

    response = await shared_client.post("/chat/invoke", json=payload)

    assert response.status_code == 422
    message = response.json()["message"]
    assert "llm_model" in message
    for alternative in ("openai", "gpt4", "gemini", "local"):
        assert alternative in message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"input": {}}, "question: Field required"),
        ({"input": {"question": ""}}, "question: String should have at least 1 character"),
        ({"input": {"question": 42}}, "question: Input should be a valid string"),
        ({"input": {"question": "hi", "extra": 1}}, "extra: Extra inputs are not permitted"),
    ],
)
async def test_malformed_input_is_422(shared_client: httpx.AsyncClient, body: dict, says: str) -> None:
    response = await shared_client.post("/chat/invoke", json=body)

    assert response.status_code == 422
    assert says in response.json()["message"]


async def test_invalid_json_is_422(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.post(
        "/chat/invoke", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert "must be a JSON object" in response.json()["message"]


async def test_client_tags_and_metadata_reach_the_monitoring_record(
    client: httpx.AsyncClient, remote_app: FastAPI
) -> None:
    payload = {
        "input": QUESTION,
        "config": {
            "configurable": {"llm_model": "gpt4"},
            "tags": ["experiment-7"],
            "metadata": {"user_id": "user_001", "session_id": "session_123", "request_id": "spoofed"},
        },
    }

    response = await client.post("/chat/invoke", json=payload)

    request_id = response.headers["x-request-id"]
    (record,) = await remote_app.state.monitoring.store.find(request_id=request_id)
    assert "experiment-7" in record.tags
    assert record.metadata["user_id"] == "user_001"  # an open server's label for who asked
    assert record.metadata["client"] == payload["config"]["metadata"]  # the client's own, kept apart
    assert record.request_id == request_id != "spoofed"
    assert record.route == "chat"


async def test_run_id_returned_by_invoke_finds_the_calls_in_monitoring(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.post("/fallback/invoke", json={"input": QUESTION})
    run_id = response.json()["metadata"]["run_id"]

    calls = (await shared_client.get("/monitoring/calls", params={"run_id": run_id})).json()["calls"]

    assert [c["model"] for c in calls] == ["gpt-4o-mini"]
    assert calls[0]["request_id"] == response.headers["x-request-id"]


async def test_client_request_id_is_kept_when_well_formed(shared_client: httpx.AsyncClient) -> None:
    good = await shared_client.post("/chat/invoke", json={"input": QUESTION}, headers={"x-request-id": "trace-42"})
    bad = await shared_client.post(
        "/chat/invoke", json={"input": QUESTION}, headers={"x-request-id": "no spaces allowed"}
    )

    assert good.headers["x-request-id"] == "trace-42"
    assert bad.headers["x-request-id"] != "no spaces allowed"


async def test_batch_answers_each_item_with_its_own_config(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    payload = {
        "inputs": [QUESTION, QUESTION],
        "config": [{"configurable": {"llm_model": "gpt4"}}, {"configurable": {"llm_model": "gemini"}}],
    }

    response = await shared_client.post("/chat/batch", json=payload)

    assert response.status_code == 200
    first, second = response.json()["output"]
    assert first.startswith("gpt-4o answers:")
    assert second.startswith("gemini-3.5-flash answers:")
    assert sorted(response.headers["x-served-by"].split(",")) == ["gemini-3.5-flash", "gpt-4o"]


async def test_batch_runs_the_monitoring_callbacks(client: httpx.AsyncClient, remote_app: FastAPI) -> None:
    response = await client.post("/fallback/batch", json={"inputs": [QUESTION, QUESTION, QUESTION]})

    records = await remote_app.state.monitoring.store.find(request_id=response.headers["x-request-id"])
    assert len(records) == 3


async def test_stats_report_totals_and_per_model_figures(client: httpx.AsyncClient, double: ProviderDouble) -> None:
    for _ in range(3):
        await client.post("/fallback/invoke", json={"input": QUESTION})

    stats = (await client.get("/monitoring/stats")).json()

    served = double.requests_for("gpt-4o-mini")
    model = stats["models"]["gpt-4o-mini"]
    assert model["calls"] == 3
    assert model["errors"] == 0
    assert model["input_tokens"] == sum(s.input_tokens for s in served)
    assert model["output_tokens"] == sum(s.output_tokens for s in served)
    assert model["latency_s"]["p50"] > 0
    assert stats["totals"]["calls"] == 3


async def test_playground_page_loads(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.get("/chat/playground/index.html")

    assert response.status_code == 200
    assert "<html" in response.text.lower()


@pytest.mark.parametrize("name", ["assets/", "index.html/x", "a" * 300, "%00", "no-such.js"])
async def test_a_playground_path_naming_no_file_is_a_json_404(shared_client: httpx.AsyncClient, name: str) -> None:
    # Found by tests/system/test_fuzz.py: LangServe opened these and answered a directory, a path under a
    # file, a name too long or a NUL byte with a 500 (and a missing file with a bare "Not Found").
    response = await shared_client.get(f"/chat/playground/{name}")

    assert response.status_code == 404
    assert "/chat/playground/" in response.json()["message"]


async def test_health_reports_configured_providers(shared_client: httpx.AsyncClient) -> None:
    body = (await shared_client.get("/health")).json()

    assert body["status"] == "ok"
    assert body["providers"] == {"openai": True, "gemini": True, "local": True}


@pytest.mark.parametrize("route", ["chat", "adaptive", "fallback", "quality"])
async def test_every_route_publishes_its_schemas(shared_client: httpx.AsyncClient, route: str) -> None:
    input_schema = (await shared_client.get(f"/{route}/input_schema")).json()
    output_schema = (await shared_client.get(f"/{route}/output_schema")).json()
    config_schema = (await shared_client.get(f"/{route}/config_schema")).json()

    assert input_schema["properties"]["question"]["type"] == "string"
    assert output_schema["type"] == "string"
    assert "configurable" in config_schema["properties"]
    temperature = config_schema["$defs"]["Configurable"]["properties"]["llm_temperature"]
    assert (temperature["type"], temperature["minimum"], temperature["maximum"]) == ("number", 0, 2)
    # The playground's form builder throws on a null type and refuses its own null defaults.
    assert "null" not in json.dumps(config_schema)


# Found by tests/system/test_fuzz.py: bodies LangServe answered with a 500.


@pytest.mark.parametrize("endpoint", ["invoke", "batch", "stream"])
async def test_a_body_that_is_not_utf8_is_422(shared_client: httpx.AsyncClient, endpoint: str) -> None:
    response = await shared_client.post(
        f"/chat/{endpoint}", content=b"\x80{", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert "UTF-8" in response.json()["message"]


async def test_json_nested_deeper_than_the_parser_goes_is_422(shared_client: httpx.AsyncClient) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000

    response = await shared_client.post("/chat/invoke", content=deep, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


@pytest.mark.parametrize("endpoint", ["invoke", "stream", "stream_events"])
async def test_config_null_is_422(shared_client: httpx.AsyncClient, endpoint: str) -> None:
    response = await shared_client.post(f"/chat/{endpoint}", json={"input": QUESTION, "config": None})

    assert response.status_code == 422
    assert "body.config" in response.json()["message"]


async def test_a_batch_item_the_input_schema_rejects_is_422_naming_it(
    shared_client: httpx.AsyncClient, double: ProviderDouble
) -> None:
    response = await shared_client.post("/fallback/batch", json={"inputs": [QUESTION, {"question": ""}]})

    assert response.status_code == 422
    body = response.json()
    assert "body.inputs.1.question" in body["message"]
    assert body["detail"][0]["loc"] == ["body", "inputs", 1, "question"]
    assert double.served == [], "nothing may run when any item is invalid"


@pytest.mark.parametrize("inputs", [5, "question", {"question": "hi"}])
async def test_batch_inputs_that_are_not_a_list_are_422(shared_client: httpx.AsyncClient, inputs: object) -> None:
    response = await shared_client.post("/chat/batch", json={"inputs": inputs})

    assert response.status_code == 422
    assert "body.inputs" in response.json()["message"]


async def test_a_stats_window_past_the_calendar_is_422(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.get("/monitoring/stats", params={"window_s": "6.6e307"})

    assert response.status_code == 422
    assert "window_s" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("GET", "/no/such/route", None, 404, "/no/such/route"),
        ("DELETE", "/health", None, 405, "GET"),
        ("POST", "/feedback", {"run_id": "r1", "score": 7}, 422, "body.score"),
        ("POST", "/chat/c/not-a-hash/invoke", {"input": QUESTION}, 400, "config hash"),
    ],
)
async def test_errors_fastapi_and_langserve_raise_carry_a_message(
    shared_client: httpx.AsyncClient, method: str, path: str, body: object, status: int, says: str
) -> None:
    response = await shared_client.request(method, path, json=body)

    assert response.status_code == status
    assert says in response.json()["message"]
    assert "detail" in response.json(), "kept for clients of FastAPI's own shape"


async def test_a_flood_of_invented_methods_adds_one_metric_series(client: httpx.AsyncClient) -> None:
    async def method_labels() -> list[str]:
        metrics = (await client.get("/metrics")).text
        return [
            sample.labels["method"]
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "http_requests_total"
        ]

    await method_labels()  # the scrape's own GET is a series from now on
    for i in range(40):
        assert (await client.request(f"X{i}" + "M" * 200, "/health")).status_code == 405
    after_40 = await method_labels()
    for i in range(40, 80):
        await client.request(f"X{i}", "/health")

    assert set(after_40) == {"GET", "other"}
    assert sorted(await method_labels()) == sorted(after_40), "40 more invented methods add no series"


async def test_health_answers_head_for_load_balancers(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.head("/health")

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", ["/monitoring/calls", "/monitoring/stats", "/monitoring/alerts"])
async def test_a_time_without_a_zone_near_year_one_is_utc_not_a_500(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.post("/chat/invoke", json={"input": QUESTION})).status_code == 200

    response = await client.get(path, params={"since": "0001-01-01T00:00:00"})

    assert response.status_code == 200
    if path == "/monitoring/calls":
        assert len(response.json()["calls"]) == 1  # everything since year one
        assert (await client.get(path, params={"until": "0001-01-01T00:00:00"})).json()["calls"] == []


@pytest.mark.parametrize(
    "path, body",
    [
        ("/chat/invoke", '{"input": {"question": "hi"}, "config": {"configurable": {"prompt_style": "\\udc80"}}}'),
        ("/chat/invoke", '{"input": {"question": "\\udc80", "language": "xx"}}'),
        ("/chat/invoke", '{"input": {"question": "hi"}, "config": {"configurable": {"bad\\udc80": 1}}}'),
        ("/chat/batch", '{"inputs": [{"question": "\\udc80"}]}'),
        ("/feedback", '{"run_id": "\\udc80", "score": 5}'),
    ],
)
async def test_a_lone_surrogate_echoed_by_a_422_is_a_422(
    shared_client: httpx.AsyncClient, path: str, body: str
) -> None:
    response = await shared_client.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_a_body_not_sent_as_json_is_415_so_no_other_site_can_post_one(
    shared_client: httpx.AsyncClient, double: ProviderDouble, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps({"input": QUESTION}).encode()

    response = await shared_client.post("/chat/invoke", content=body, headers=headers)

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert "application/json" in response.json()["message"]
    assert double.served == [], "no model was called"


async def test_json_with_a_charset_is_json(shared_client: httpx.AsyncClient) -> None:
    body = json.dumps({"input": QUESTION}).encode()

    response = await shared_client.post(
        "/chat/invoke", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/dashboard", "/chat/playground/"])
async def test_pages_may_not_be_framed_by_another_site(shared_client: httpx.AsyncClient, path: str) -> None:
    response = await shared_client.get(path)

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert "content-security-policy" not in (await shared_client.get("/health")).headers
