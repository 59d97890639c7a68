"""The model alternatives clients choose with ``llm_model``, in one table, and the ladders built
from them.

An alternative is a short stable key; the concrete model behind it is a setting (its default is
the row's ``model``, which is also its key in the price file). ``local`` needs no key and no
network, so it is every ladder's floor. Adding an alternative is one row here, its prices in
``monitoring/prices.toml`` and, if its tiers are not the default ones, ``tiers`` on the row.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENAI = "openai"
GPT4 = "gpt4"
GEMINI = "gemini"
LOCAL = "local"

# How a model is reached; each is also the ``ls_provider`` its LangChain model reports.
OPENAI_PROVIDER = "openai"
GEMINI_PROVIDER = "google_genai"
LOCAL_PROVIDER = "local"

EVERY_TIER = ("free", "pro", "enterprise")  # the default tiers (``policy.tiers.default_tiers``)
ALTERNATIVE_NAME = r"^[a-z][a-z0-9_-]{0,31}$"  # what a models file may call an alternative of its own

# What a request may need of a model beyond text (the OpenAI-compatible door's ``tools`` and
# ``response_format``); a rung whose model cannot is skipped with ``Cause.UNSUPPORTED``.
TOOLS = "tools"
STRUCTURED_OUTPUT = "structured_output"
REMOTE_CAPABILITIES = frozenset({TOOLS, STRUCTURED_OUTPUT})
# The provider continues a conversation that ends with the assistant's own message (a prefill):
# how a broken stream is best continued (``chains.continuation``). Set by ``LLM_SERVER_PREFILL_MODELS``.
PREFILL = "prefill"


@dataclass(frozen=True)
class ModelEntry:
    """One alternative: who serves it, its default model, the settings that change it, the
    default tiers that may use it, and what it can do beyond text."""

    alternative: str
    provider: str
    model: str
    model_setting: str | None = None  # the settings field naming another model; None: fixed
    key_setting: str | None = None  # the settings field holding its API key; None: needs none
    tiers: tuple[str, ...] = EVERY_TIER
    capabilities: frozenset[str] = REMOTE_CAPABILITIES


REGISTRY: tuple[ModelEntry, ...] = (
    ModelEntry(OPENAI, OPENAI_PROVIDER, "gpt-4o-mini", "openai_model", "openai_api_key"),
    ModelEntry(GPT4, OPENAI_PROVIDER, "gpt-4o", "gpt4_model", "openai_api_key", tiers=("enterprise",)),
    ModelEntry(GEMINI, GEMINI_PROVIDER, "gemini-3.5-flash", "gemini_model", "google_api_key", ("pro", "enterprise")),
    ModelEntry(LOCAL, LOCAL_PROVIDER, "SmolLM2-135M-Instruct", "local_model_name", capabilities=frozenset()),
)
ENTRIES = {entry.alternative: entry for entry in REGISTRY}
ALTERNATIVES = tuple(ENTRIES)

AUTO = "auto"  # let adaptive routing pick among the caller's models; not an alternative of its own
DEFAULT_ALTERNATIVE = OPENAI  # ``llm_model`` when the client sends none

# The seed's ladder: gpt-4o-mini (short timeout) -> Gemini flash -> gpt-4o -> local.
DEFAULT_LADDER = (OPENAI, GEMINI, GPT4, LOCAL)
FLOOR = LOCAL  # the rung a ladder must end on


@dataclass(frozen=True)
class ModelSpec:
    """One deployment of an alternative as this server runs it: the provider, the concrete model,
    what it can do beyond text, and, when the alternative has several deployments (a models file),
    its name, its share of the traffic (``weight``), the requests and tokens per minute it may
    take, and its context window in tokens."""

    alternative: str
    provider: str
    model: str
    capabilities: frozenset[str] = frozenset()
    deployment: str | None = None  # None: the alternative's only deployment, named by its endpoint
    weight: float = 1.0
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    context_window: int | None = None
    price_key: str | None = None  # its key in the price table, when not its model's name

    @property
    def endpoint(self) -> str:
        """The name its circuit breaker, balancing statistics and records go by."""
        return self.deployment or f"{self.provider}:{self.model}"

    def lacks(self, needs: frozenset[str]) -> frozenset[str]:
        """What of ``needs`` this model cannot do."""
        return needs - self.capabilities
