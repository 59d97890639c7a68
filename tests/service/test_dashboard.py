"""The dashboard's data (timeline, totals, breakers, alerts, faults, routing, recent calls) and
fault injection switched on and off while the server runs. The page itself is tested in a real
browser in test_dashboard_browser.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from dashboard.snapshot import bucket_seconds, timeline
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.keys import as_tier, keyed_settings
from tests.helpers.provider_double import ProviderDouble
from tests.helpers.records import T0, call

NOW = T0 + timedelta(minutes=15)


def test_the_timeline_has_equal_buckets_oldest_first_and_keeps_the_empty_ones() -> None:
    records = [
        call(started_at=NOW - timedelta(seconds=895), duration_s=1.0),
        call(started_at=NOW - timedelta(seconds=889), duration_s=3.0, rung=1),
        call(started_at=NOW - timedelta(seconds=5), outcome="error", cause="timeout", duration_s=9.0),
        call(started_at=NOW - timedelta(seconds=2000)),  # before the window
    ]

    points = timeline(records, now=NOW, window_s=900)

    assert bucket_seconds(900) == 15 and len(points) == 60
    assert points[-1]["at"] == NOW.isoformat()
    first, last = points[0], points[-1]
    assert (first["calls"], first["errors"], first["fallback_answers"]) == (2, 0, 1)
    assert first["latency_p50_s"] == 2.0 and first["tokens"] == 40
    assert (last["calls"], last["errors"], last["latency_p50_s"]) == (1, 1, None), "errors have no latency"
    assert sum(p["calls"] for p in points) == 3
    assert all(p["calls"] == 0 and p["latency_p50_s"] is None for p in points[1:-1])


async def test_dashboard_data_shows_traffic_faults_breakers_alerts_and_routing(
    double: ProviderDouble, make_app: AppFactory
) -> None:
    app = make_app(settings_for(double, breaker_consecutive_failures=2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        page = await http.get("/dashboard")
        script = await http.get("/dashboard/assets/vendor/chart.umd.min.js")
        for _ in range(2):
            await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}, "config": {"tags": ["t1"]}})
        switched = await http.put("/faults", json={"openai": {"kind": "status", "status": 503}})
        for _ in range(3):
            assert (await http.post("/chat/invoke", json={"input": {"question": "What is TCP?"}})).status_code == 200
        data = (await http.get("/dashboard/data", params={"window_s": 300})).json()
        tagged = (await http.get("/dashboard/data", params={"tag": "t1"})).json()["recent_calls"]

    assert page.status_code == 200 and "<canvas" in page.text
    assert script.status_code == 200 and "Chart.js" in script.text[:200]
    assert switched.status_code == 200 and switched.json()["faults"]["openai"]["status"] == 503
    assert data["totals"]["calls"] == 2 + 2 + 3, "2 answers, 2 failures that opened the breaker, 3 local answers"
    assert sum(p["calls"] for p in data["timeline"]) == data["totals"]["calls"]
    assert data["causes"] == {"server_error": 2}
    assert [b["state"] for b in data["breakers"]] == ["open"]
    assert "circuit_breaker" in {a["rule"] for a in data["alerts"]["firing"]}
    assert data["faults"] == {"active": {"openai": switched.json()["faults"]["openai"]}, "control": True}
    assert {d["model_reason"] for d in data["routing"]} == {"the enterprise tier's default"}
    assert len(tagged) == 2 and all(c["tags"] == ["t1"] and c["user_id"] == "anonymous" for c in tagged)


async def test_faults_switch_on_and_off_while_the_server_runs(double: ProviderDouble, make_app: AppFactory) -> None:
    app = make_app(settings_for(double))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as http:
        on = await http.put("/faults", json={"openai": {"kind": "status", "status": 503}})
        faulted = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}})
        off = await http.put("/faults", json={})
        healthy = await http.post("/chat/invoke", json={"input": {"question": "What is DNS?"}})
        unknown = await http.put("/faults", json={"claude": {"kind": "slow"}})

    assert on.status_code == off.status_code == 200
    assert faulted.headers["x-served-by"] == "SmolLM2-135M-Instruct", "the injected 503 sent it down the ladder"
    assert off.json()["faults"] == {}
    assert healthy.headers["x-served-by"] == "gpt-4o-mini"
    assert [s.model for s in double.served] == ["gpt-4o-mini"], "the injected fault never reached the provider"
    assert unknown.status_code == 422 and "claude" in unknown.json()["message"]


async def test_with_api_keys_faults_cannot_be_changed_unless_allowed(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path
) -> None:
    locked = make_app(keyed_settings(double, tmp_path))
    allowed = make_app(keyed_settings(double, tmp_path, fault_control=True))
    fault = {"openai": {"kind": "slow", "delay_s": 1}}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=locked), base_url="http://server") as http:
        refused = await http.put("/faults", json=fault, headers=as_tier("admin"))
        shown = await http.get("/faults", headers=as_tier("admin"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=allowed), base_url="http://server") as http:
        accepted = await http.put("/faults", json=fault, headers=as_tier("admin"))

    assert refused.status_code == 403 and "LLM_SERVER_FAULT_CONTROL" in refused.json()["message"]
    assert shown.json() == {"faults": {}, "control": False}
    assert accepted.status_code == 200
