"""The model alternatives the server offers and how each is built from settings.

An alternative is a short stable key clients send (``openai``, ``gpt4``, ``gemini``, ``local``);
the concrete model behind it is a setting. A provider without a key yields an
``UnconfiguredChatModel`` instead of a client, so start-up never needs the network or a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from providers.engine_client import EngineClient
from providers.engine_supervisor import EngineOptions, EngineSupervisor
from providers.guard import Guard
from providers.local import LOCAL_PROVIDER, GuardedLocalChatModel
from providers.unconfigured import UnconfiguredChatModel
from resilience.faults import FaultPlan
from settings import Settings
from vocabulary import GEMINI, GPT4, LOCAL, OPENAI

OPENAI_PROVIDER = "openai"
GEMINI_PROVIDER = "google_genai"  # what ChatGoogleGenerativeAI reports as ls_provider


@dataclass(frozen=True)
class ModelSpec:
    alternative: str
    provider: str
    model: str


def model_specs(settings: Settings) -> dict[str, ModelSpec]:
    """Every alternative, in the order the seed's ladder tries them."""
    specs = [
        ModelSpec(OPENAI, OPENAI_PROVIDER, settings.openai_model),
        ModelSpec(GEMINI, GEMINI_PROVIDER, settings.gemini_model),
        ModelSpec(GPT4, OPENAI_PROVIDER, settings.gpt4_model),
        ModelSpec(LOCAL, LOCAL_PROVIDER, settings.local_model_name),
    ]
    return {spec.alternative: spec for spec in specs}


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


def build_chat_model(
    spec: ModelSpec,
    settings: Settings,
    engine: EngineClient,
    *,
    timeout_s: float | None = None,
    faults: FaultPlan | None = None,
) -> BaseChatModel:
    timeout = timeout_s or settings.provider_timeout_s
    temperature = settings.default_temperature
    if spec.provider == LOCAL_PROVIDER:
        # No first-token limit: the local model's first token waits for its queue, which has its own.
        guard = Guard(spec.alternative, spec.model, stall_s=settings.stream_stall_timeout_s, faults=faults)
        return GuardedLocalChatModel(
            engine=engine,
            model_name=spec.model,
            temperature=temperature,
            max_tokens=settings.local_max_tokens,
            guard=guard,
        )
    guard = Guard(
        spec.alternative,
        spec.model,
        first_token_s=settings.first_token_timeout_s,
        stall_s=settings.stream_stall_timeout_s,
        faults=faults,
    )
    if spec.provider == OPENAI_PROVIDER:
        if settings.openai_api_key is None:
            return UnconfiguredChatModel(
                provider=spec.provider, model_name=spec.model, missing_setting="OPENAI_API_KEY"
            )
        from providers.remote import GuardedChatOpenAI

        return GuardedChatOpenAI(
            guard=guard,
            model=spec.model,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=timeout,
            max_retries=settings.provider_max_retries,
            temperature=temperature,
            stream_usage=True,
            streaming=True,  # so invokes get the first-token deadline and the cut-stream check too
        )
    if spec.provider == GEMINI_PROVIDER:
        if settings.google_api_key is None:
            return UnconfiguredChatModel(
                provider=spec.provider, model_name=spec.model, missing_setting="GOOGLE_API_KEY"
            )
        from providers.remote import GuardedChatGoogleGenerativeAI

        return GuardedChatGoogleGenerativeAI(
            guard=guard,
            model=spec.model,
            google_api_key=settings.google_api_key,
            base_url=settings.google_gemini_base_url,
            api_version=settings.gemini_api_version,
            timeout=timeout,
            max_retries=settings.provider_max_retries,
            temperature=temperature,
            streaming=True,
        )
    raise ValueError(f"unknown provider {spec.provider!r}")


def configured_alternatives(settings: Settings) -> list[str]:
    """The alternatives that can answer at all: a key for remote ones, a model file for local."""
    local_path = settings.resolved_local_model_path()
    configured = {
        OPENAI: settings.openai_api_key is not None,
        GPT4: settings.openai_api_key is not None,
        GEMINI: settings.google_api_key is not None,
        LOCAL: bool(local_path and local_path.is_file()),
    }
    return [alternative for alternative in model_specs(settings) if configured[alternative]]
