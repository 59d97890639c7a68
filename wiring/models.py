"""The chat model behind each alternative, built from settings and ``vocabulary.models.REGISTRY``,
and the local engine the models share.

A provider without a key yields an ``UnconfiguredChatModel`` instead of a client, so start-up never
needs the network or a key.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import certifi
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineOptions, EngineSupervisor
from providers.guard import Guard
from providers.local import GuardedLocalChatModel
from providers.unconfigured import UnconfiguredChatModel
from resilience.faults import FaultPlan
from settings import ProviderHttp, Settings
from settings.models_file import Endpoint, ModelsCatalog
from vocabulary.models import (
    ALTERNATIVES,
    DEFAULT_LADDER,
    ENTRIES,
    GEMINI_PROVIDER,
    OPENAI_PROVIDER,
    PREFILL,
    REGISTRY,
    ModelEntry,
    ModelSpec,
)

if TYPE_CHECKING:
    import httpx2


def model_name(settings: Settings, entry: ModelEntry) -> str:
    return str(getattr(settings, entry.model_setting)) if entry.model_setting else entry.model


def model_specs(settings: Settings) -> dict[str, ModelSpec]:
    """Every alternative: the seed's ladder order first, then the rest of the registry."""
    order = [*DEFAULT_LADDER, *(entry.alternative for entry in REGISTRY if entry.alternative not in DEFAULT_LADDER)]
    entries = [ENTRIES[alternative] for alternative in order]
    prefill = frozenset({PREFILL})
    return {
        e.alternative: ModelSpec(
            e.alternative,
            e.provider,
            model_name(settings, e),
            e.capabilities | prefill if e.alternative in settings.prefill_models else e.capabilities,
        )
        for e in entries
    }


def endpoints(settings: Settings, catalog: ModelsCatalog | None = None) -> dict[str, list[Endpoint]]:
    """Every alternative's deployments: the models file's for those it gives any, else the one the
    settings describe; in the registry's order, then the file's alternatives of new names."""
    declared = catalog.deployments if catalog is not None else {}
    specs = model_specs(settings)
    served = {
        alternative: list(declared.get(alternative) or [_builtin_endpoint(settings, specs[alternative])])
        for alternative in ALTERNATIVES
    }
    for alternative in catalog.new_alternatives if catalog is not None else ():
        served[alternative] = list(declared[alternative])
    return served


def capabilities_of(served: Mapping[str, Sequence[Endpoint]]) -> dict[str, frozenset[str]]:
    """What each alternative can do beyond text: what any of its deployments can."""
    return {alt: frozenset().union(*(e.spec.capabilities for e in ends)) for alt, ends in served.items()}


def _builtin_endpoint(settings: Settings, spec: ModelSpec) -> Endpoint:
    entry = ENTRIES[spec.alternative]
    key_variable = entry.key_setting.upper() if entry.key_setting else None
    api_key = getattr(settings, entry.key_setting) if entry.key_setting else None
    if spec.provider == OPENAI_PROVIDER:
        return Endpoint(spec, "openai", settings.openai_base_url, api_key, key_variable)
    if spec.provider == GEMINI_PROVIDER:
        return Endpoint(
            spec, "gemini", settings.google_gemini_base_url, api_key, key_variable, settings.gemini_api_version
        )
    return Endpoint(spec, "local")


def configured_alternatives(settings: Settings, catalog: ModelsCatalog | None = None) -> list[str]:
    """The alternatives that can answer at all: a deployment with its key (or needing none) for
    remote ones, a model file for local."""
    return [
        alt for alt, served in endpoints(settings, catalog).items() if any(_configured(settings, e) for e in served)
    ]


def _configured(settings: Settings, endpoint: Endpoint) -> bool:
    if endpoint.kind == "local":
        local_path = settings.resolved_local_model_path()
        return bool(local_path and local_path.is_file())
    return endpoint.key_variable is None or endpoint.api_key is not None


def engine_options(settings: Settings) -> EngineOptions | None:
    """How to start the local engine's process; None when there is no model file to run."""
    path = settings.resolved_local_model_path()
    if path is None or not path.is_file():
        return None
    return EngineOptions(
        path,
        context_tokens=settings.local_context_tokens,
        threads=settings.local_threads,
        queue_size=settings.local_queue_size,
        queue_timeout_s=settings.local_queue_timeout_s,
        log_level=settings.log_level,
        max_backoff_s=settings.local_engine_max_backoff_s,
    )


def own_engine(settings: Settings) -> EngineSupervisor | None:
    """The engine this process must start and supervise: none when another process already runs
    one for it (``LLM_SERVER_LOCAL_ENGINE_DIR``) or there is no model file to run."""
    options = None if settings.local_engine_dir is not None else engine_options(settings)
    return EngineSupervisor(options) if options is not None else None


def engine_client(settings: Settings, folder: Path | None) -> EngineClient:
    return EngineClient(folder, settings.resolved_local_model_path(), queue_size=settings.local_queue_size)


Builder = Callable[[Endpoint, Settings, EngineClient, float, Guard, "HttpClients"], BaseChatModel]


def build_chat_model(
    endpoint: Endpoint,
    settings: Settings,
    engine: EngineClient,
    *,
    timeout_s: float | None = None,
    faults: FaultPlan | None = None,
    clients: HttpClients | None = None,
) -> BaseChatModel:
    """The chat model of one deployment; ``timeout_s``: the ladder's for it (the deployment's own
    wins), else the provider timeout; ``clients``: the HTTP clients it shares with the server's
    other models (a new one of its own without)."""
    spec = endpoint.spec
    # No first-token limit for the local model: its first token waits for its queue, which has its own.
    first_token_s = (
        None if endpoint.kind == "local" else endpoint.first_token_timeout_s or settings.first_token_timeout_s
    )
    guard = Guard(
        spec.alternative,
        spec.model,
        first_token_s=first_token_s,
        stall_s=settings.stream_stall_timeout_s,
        faults=faults,
        max_bad_chunks=settings.max_bad_chunks,
    )
    if endpoint.key_variable is not None and endpoint.api_key is None:
        return UnconfiguredChatModel(
            provider=spec.provider, model_name=spec.model, missing_setting=endpoint.key_variable
        )
    timeout = endpoint.timeout_s or timeout_s or settings.provider_timeout_s
    return _BUILDERS[endpoint.kind](endpoint, settings, engine, timeout, guard, clients or HttpClients())


def _local(
    endpoint: Endpoint,
    settings: Settings,
    engine: EngineClient,
    _timeout_s: float,
    guard: Guard,
    _clients: HttpClients,
) -> BaseChatModel:
    return GuardedLocalChatModel(
        engine=engine,
        model_name=endpoint.spec.model,
        temperature=settings.default_temperature,
        max_tokens=settings.local_max_tokens,
        guard=guard,
    )


def _remote_options(settings: Settings, timeout_s: float) -> dict[str, Any]:
    # streaming=True so invokes get the first-token deadline and the cut-stream check too.
    return {
        "timeout": timeout_s,
        "max_retries": settings.provider_max_retries,
        "temperature": settings.default_temperature,
        "streaming": True,
    }


def _openai(
    endpoint: Endpoint,
    settings: Settings,
    _engine: EngineClient,
    timeout_s: float,
    guard: Guard,
    clients: HttpClients,
) -> BaseChatModel:
    from providers.remote import GuardedChatOpenAI

    return GuardedChatOpenAI(
        guard=guard,
        model=endpoint.spec.model,
        # An endpoint that takes no key (a vLLM or Ollama box) still gets one: the SDK insists.
        api_key=endpoint.api_key or SecretStr("none"),
        base_url=endpoint.base_url,
        stream_usage=True,
        http_async_client=clients.openai(endpoint.base_url),
        **_remote_options(settings, timeout_s),
    )


def _azure(
    endpoint: Endpoint,
    settings: Settings,
    _engine: EngineClient,
    timeout_s: float,
    guard: Guard,
    clients: HttpClients,
) -> BaseChatModel:
    from providers.remote import GuardedAzureChatOpenAI

    return GuardedAzureChatOpenAI(
        guard=guard,
        azure_deployment=endpoint.spec.model,
        azure_endpoint=endpoint.base_url,
        api_version=endpoint.api_version,
        api_key=endpoint.api_key,
        stream_usage=True,
        http_async_client=clients.openai(endpoint.base_url),
        **_remote_options(settings, timeout_s),
    )


class HttpClients:
    """The async HTTP clients of the OpenAI models one server builds: one per base URL, as
    langchain-openai keeps its own, so every model of an endpoint shares the connection pool; with
    the SDK's defaults (pool limits, redirects) and the hook that skips stream events that are not
    JSON. Per server, not per process: a pool's connections belong to the event loop they were
    opened in.

    ``backend`` ``aiohttp`` is the SDK's own aiohttp transport (``openai.DefaultAioHttpClient``):
    the same ``httpx2`` client above a C-parsed HTTP/1.1 connection, measured about a fifth less
    server CPU per provider call than the SDK's default ``httpx`` one (BENCHMARKS.md)."""

    def __init__(self, backend: ProviderHttp = "aiohttp") -> None:
        self.backend = backend
        self._clients: dict[str | None, httpx2.AsyncClient] = {}

    def openai(self, base_url: str | None) -> httpx2.AsyncClient:
        if base_url not in self._clients:
            import openai

            from providers.sse_tolerance import tolerate_bad_chunks

            client = openai.DefaultAioHttpClient if self.backend == "aiohttp" else openai.DefaultAsyncHttpxClient
            self._clients[base_url] = client(event_hooks={"response": [tolerate_bad_chunks]})
        return self._clients[base_url]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The CA store every Gemini client verifies with, as google-genai builds it (SSL_CERT_FILE and
    SSL_CERT_DIR first), loaded once: each client would otherwise load its own (~30 ms apiece)."""
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()), capath=os.environ.get("SSL_CERT_DIR")
    )


def _gemini(
    endpoint: Endpoint,
    settings: Settings,
    _engine: EngineClient,
    timeout_s: float,
    guard: Guard,
    _clients: HttpClients,
) -> BaseChatModel:
    from providers.remote import GuardedChatGoogleGenerativeAI

    return GuardedChatGoogleGenerativeAI(
        guard=guard,
        client_args={"verify": _tls_context(), "ssl": _tls_context()},  # httpx reads one, websockets the other
        model=endpoint.spec.model,
        google_api_key=endpoint.api_key,
        base_url=endpoint.base_url,
        api_version=endpoint.api_version or settings.gemini_api_version,
        **_remote_options(settings, timeout_s),
    )


_BUILDERS: dict[str, Builder] = {"local": _local, "openai": _openai, "azure": _azure, "gemini": _gemini}
