"""Arize Phoenix as a real trace receiver for the system tests: ``phoenix serve`` in a process of its
own, on free ports, with its SQLite file in the test's folder; spans sent to it over OTLP are read
back through its REST API (``GET /v1/projects/{project}/spans``) in a small normalised form.

Phoenix lives in a virtual environment of its own, ``.venv-phoenix`` (``bash scripts/setup.sh test``
makes it), and is only ever run as a command: it is an application with its own pins of the
packages the server is built on (fastapi, starlette, uvicorn, pydantic, openai) and 143
packages in all (850 MB), so installed into ``.venv`` it would choose the server's versions for it.
Nothing here imports Phoenix; this module speaks HTTP to it.

Phoenix (checked against 20.26) keeps spans in its own model, not OTLP's, so what comes back is not
quite what was sent:

- ``kind`` is Phoenix's OpenInference span kind (``LLM``, ``CHAIN``, ``TOOL``, ...), taken from the
  ``openinference.span.kind`` attribute or inferred from ``gen_ai.*`` ones, else ``UNKNOWN``. The
  OpenTelemetry kind (``SERVER``, ``CLIENT``), the resource, the scope and links are not stored.
- ``attributes`` are what was sent plus what Phoenix derives from ``gen_ai.*`` attributes
  (``llm.model_name``, ``llm.token_count.*``, ...); the JSON strings of ``metadata``,
  ``tool.parameters`` and a few more come back parsed and flattened (``metadata.k``), and
  ``openinference.span.kind`` becomes ``kind``. Tests compare subsets.
- Spans land in the project named by the resource attribute ``openinference.project.name``, else
  in ``default``. Only protobuf is accepted at ``POST /v1/traces`` (JSON gets 415).
- Ingestion is asynchronous (a queue written to SQLite every 0.1 s): ``wait_for_spans`` polls.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import httpx

from tests.helpers.processes import ROOT, eventually, free_port, wait_healthy

PHOENIX_CLI = ROOT / ".venv-phoenix" / "bin" / "phoenix"
DEFAULT_PROJECT = "default"
START_TIMEOUT_S = 90  # 13 to 20 s on 2 idle cores (8 s of it imports); 40 s for two at once on a busy machine
PAGE = 1000  # the most spans Phoenix returns per page
PORT_ATTEMPTS = 3

# Nothing from the developer's shell reaches Phoenix: not its own settings, not an OTEL_* variable
# (which would make it export its own telemetry), not a provider key.
_INHERITED_PREFIXES = ("PHOENIX_", "OTEL_", "OPENAI_", "GOOGLE_", "GEMINI_", "ANTHROPIC_", "AWS_", "AZURE_")


class PhoenixEvent(TypedDict):
    name: str
    attributes: dict[str, Any]


class PhoenixSpan(TypedDict):
    name: str
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_id: str | None
    kind: str  # OpenInference's kind, not OpenTelemetry's (module docstring)
    attributes: dict[str, Any]  # flat, dotted keys
    events: list[PhoenixEvent]
    status_code: str  # "OK", "ERROR" or "UNSET"


@dataclass(frozen=True)
class Phoenix:
    url: str
    grpc_port: int
    log_path: Path
    project: str = DEFAULT_PROJECT

    @property
    def otlp_endpoint(self) -> str:
        """The value for ``OTEL_EXPORTER_OTLP_ENDPOINT``; OTLP/HTTP traces go to ``/v1/traces``."""
        return self.url

    @property
    def ui_url(self) -> str:
        return self.url

    def spans(self, trace_id: str) -> list[PhoenixSpan]:
        """Every span of the trace that Phoenix has stored so far, by start time."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"trace_id": trace_id.lower(), "limit": PAGE, "sort": "start_time"}
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while True:
                response = http.get(f"/v1/projects/{self.project}/spans", params=params)
                if response.status_code == 404:  # the project is made by its first span
                    return []
                response.raise_for_status()
                body = response.json()
                found.extend(body["data"])
                if not body.get("next_cursor"):
                    break
                params["cursor"] = body["next_cursor"]
        return [
            _normalised(span) for span in sorted(found, key=lambda span: datetime.fromisoformat(span["start_time"]))
        ]

    def wait_for_spans(self, trace_id: str, count: int, timeout_s: float = 20) -> list[PhoenixSpan]:
        """The spans of the trace once at least ``count`` of them are stored."""
        seen: list[PhoenixSpan] = []

        def arrived() -> bool:
            seen[:] = self.spans(trace_id)
            return len(seen) >= count

        try:
            eventually(arrived, f"{count} span(s) of trace {trace_id} in Phoenix", timeout_s)
        except AssertionError as error:
            names = [span["name"] for span in seen]
            raise AssertionError(f"{error}; stored: {names or 'none'} (its log: {self.log_path})") from None
        return seen


@contextmanager
def running_phoenix(folder: Path, *, project: str = DEFAULT_PROJECT) -> Iterator[Phoenix]:
    """``phoenix serve`` on 127.0.0.1, on free HTTP and gRPC ports, with its working directory,
    SQLite file and log in ``folder``, once it answers ``/readyz``; stopped at the end."""
    assert PHOENIX_CLI.exists(), f"{PHOENIX_CLI} is missing: bash scripts/setup.sh test creates .venv-phoenix"
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port, grpc_port = _two_free_ports()
        phoenix = Phoenix(f"http://127.0.0.1:{port}", grpc_port, folder / "phoenix.log", project)
        with phoenix.log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(PHOENIX_CLI), "serve"],
                cwd=folder,
                env=_environment(folder, port, grpc_port),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            try:
                wait_healthy(process, phoenix.url, timeout_s=START_TIMEOUT_S, path="/readyz")
            except RuntimeError as error:
                log_text = phoenix.log_path.read_text(errors="replace")
                if "address already in use" in log_text.lower() and attempt < PORT_ATTEMPTS:
                    continue  # it binds its ports some 15 s after they were found free: another took one
                log_tail = "\n".join(log_text.splitlines()[-40:])
                raise RuntimeError(f"Phoenix: {error}; the end of its log:\n{log_tail}") from None
            yield phoenix
            return
        finally:
            _stop(process)


def _two_free_ports() -> tuple[int, int]:
    port, grpc_port = free_port(), free_port()
    while grpc_port == port:
        grpc_port = free_port()
    return port, grpc_port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # it drains its span queue and stops in about a second
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _environment(folder: Path, port: int, grpc_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.update(
        PHOENIX_WORKING_DIR=str(folder),
        PHOENIX_SQL_DATABASE_URL=f"sqlite:///{folder / 'phoenix.db'}",
        PHOENIX_HOST="127.0.0.1",  # the HTTP port; gRPC always listens on every interface
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        # No request to the internet of its own accord (telemetry, fonts, a WASM sandbox download at
        # start-up); the machines the tests run on may have none.
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_DISABLE_AGENT_ASSISTANT="true",
        PHOENIX_ENABLE_MCP_SERVER="false",
        PHOENIX_LOG_MIGRATIONS="false",  # else every SQL statement of its 35 migrations is logged
    )
    return env


def _normalised(span: Mapping[str, Any]) -> PhoenixSpan:
    return PhoenixSpan(
        name=span["name"],
        trace_id=span["context"]["trace_id"],
        span_id=span["context"]["span_id"],
        parent_id=span.get("parent_id") or None,
        kind=span["span_kind"],
        attributes=_flat(span.get("attributes") or {}),
        events=[PhoenixEvent(name=e["name"], attributes=_flat(e.get("attributes") or {})) for e in span["events"]],
        status_code=span["status_code"],
    )


def _flat(attributes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys all the way down (Phoenix flattens span attributes already, event ones not)."""
    flat: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
