"""``.env`` for everyone: the variables the SDKs read from the environment themselves.

pydantic-settings reads ``.env`` for the fields of ``Settings`` only. LangSmith (``LANGSMITH_TRACING``,
``LANGSMITH_API_KEY``, ...), the OpenAI SDK (``OPENAI_ORG_ID``) and the HTTP clients (``HTTPS_PROXY``)
read ``os.environ``, so ``load_env_file`` puts ``.env`` there once at start, before the app is built.

It must run before the first traced run: langsmith reads its variables then and keeps them
(``langsmith.utils.get_env_var`` and ``get_tracer_project`` are ``functools.lru_cache``d), so a
later change is never seen. Importing langsmith reads only ``LANGSMITH_RUN_COMPRESSION_LEVEL`` and
``LANGSMITH_RUN_COMPRESSION_THREADS`` (``langsmith/_internal/_compressed_traces.py``), before any
``.env`` can be loaded; set those two in the real environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

ENV_FILE = Path(".env")


@dataclass(frozen=True)
class SdkVariable:
    """A variable an SDK reads itself, listed in ``.env.example`` next to the settings."""

    name: str
    description: str
    default: str = ""


SDK_VARIABLES = (
    SdkVariable(
        "LANGSMITH_TRACING",
        "true (lower case): send a trace of every request (question, prompt, answer, model, timings, metadata) "
        "to LANGSMITH_ENDPOINT; unset or false: nothing is sent. The older LANGCHAIN_TRACING_V2 wins when set.",
        "false",
    ),
    SdkVariable("LANGSMITH_API_KEY", "LangSmith key the traces are sent with (as the x-api-key header)."),
    SdkVariable("LANGSMITH_PROJECT", "LangSmith project the traces go to.", "default"),
    SdkVariable(
        "LANGSMITH_ENDPOINT",
        "LangSmith API the traces go to (a self-hosted LangSmith, or another region).",
        "https://api.smith.langchain.com",
    ),
    SdkVariable(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OpenTelemetry collector (OTLP over HTTP, e.g. http://localhost:4318 or Phoenix's http://localhost:6006): "
        "set, every request is traced there with the GenAI conventions and the GenAI metrics go there too; "
        "unset, tracing is off and nothing is built (README: OpenTelemetry).",
    ),
    SdkVariable("OTEL_SERVICE_NAME", "The service name traces and metrics carry.", "llm-fallback-server"),
    SdkVariable(
        "OTEL_TRACES_SAMPLER",
        "Which requests are traced: parentbased_always_on (all, or as the caller's traceparent says), "
        "parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0.1 for one in ten, ...",
        "parentbased_always_on",
    ),
    SdkVariable(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "Headers sent to the collector, e.g. authorization=Bearer%20token (a secret: keep it out of version control).",
    ),
    SdkVariable(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "true: put prompt and answer text on the model-call spans (secrets this server knows and key-shaped "
        "text redacted); unset or false: never.",
        "false",
    ),
    SdkVariable("OPENAI_ORG_ID", "OpenAI organization the OpenAI SDK sends with every request."),
    SdkVariable("HTTPS_PROXY", "Proxy for outgoing HTTPS: providers and LangSmith (httpx and requests read it)."),
    SdkVariable("NO_PROXY", "Hosts reached without the proxy, comma-separated, e.g. localhost,127.0.0.1."),
)


def load_env_file(path: Path = ENV_FILE) -> bool:
    """Put the variables of ``path`` (``.env`` in the working directory, the file pydantic-settings
    reads) into ``os.environ``; variables already set win. A missing file is fine, and loading again
    changes nothing. True if the file exists and holds any variable."""
    # An explicit path: dotenv.find_dotenv() would search from this module's folder, not the cwd.
    return load_dotenv(path, override=False, encoding="utf-8")
