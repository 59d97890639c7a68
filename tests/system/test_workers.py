"""``python server.py --workers 2``: two processes serve one port, and /metrics through either of
them counts the requests both answered (prometheus-client's multiprocess mode)."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.processes import server_process


def health_requests(metrics: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == "/health"
    )


def test_two_workers_serve_one_port_and_their_metrics_add_up(tmp_path: Path) -> None:
    settings = {"LLM_SERVER_METRICS_DIR": str(tmp_path / "prometheus")}
    with server_process(tmp_path / "server", settings, "--workers", "2") as url:
        before = health_requests(httpx.get(f"{url}/metrics").text)
        workers: set[int] = set()
        sent = 0
        while len(workers) < 2 and sent < 200:  # new connections, so the kernel spreads them over both
            workers.add(httpx.get(f"{url}/health", headers={"connection": "close"}).json()["process"])
            sent += 1
        after = health_requests(httpx.get(f"{url}/metrics").text)

    assert len(workers) == 2, f"{sent} requests all reached one worker"
    assert after - before == sent, "a scrape through either worker counts what both answered"
