"""``Tier``: what a class of callers may use (model alternatives, the default one) and how much
(requests, tokens and feedback posts per minute). The tier table is a setting
(``LLM_SERVER_TIERS``); API keys name a tier (see ``policy.keys``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

from pydantic import BaseModel, Field, model_validator

from vocabulary import ALTERNATIVES, AUTO, DEFAULT_ALTERNATIVE, LOCAL, REGISTRY

__all__ = ["ALTERNATIVES", "AUTO", "Tier", "default_tiers"]  # every tier may ask for AUTO


class Tier(BaseModel):
    models: list[str] = Field(description="Model alternatives this tier may use.")
    default_model: str = Field(description="The model when the caller names none (or `auto`).")
    requests_per_minute: int = Field(60, ge=1, description="Requests per minute per API key.")
    tokens_per_minute: int = Field(100_000, ge=1, description="LLM tokens (in + out) per minute per API key.")
    feedback_per_minute: int = Field(30, ge=1, description="POST /feedback requests per minute per API key.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # Whether the models are alternatives is the settings' to check: a models file may add some.
        if not self.models:
            raise ValueError(f"give a tier one or more models, some of {', '.join(ALTERNATIVES)}")
        if self.default_model not in (*self.models, AUTO):
            raise ValueError(f"default_model {self.default_model!r} is not one of the tier's models {self.models}")
        return self

    def allows(self, alternative: str) -> bool:
        return alternative == AUTO or alternative in self.models


def default_tiers(more: Mapping[str, Sequence[str]] | None = None) -> dict[str, Tier]:
    """Each tier's models are the registry's rows naming it: free callers get the local model and
    the cheap OpenAI one; pro adds Gemini; enterprise gets everything, gpt-4o included. ``more``:
    a models file's alternatives of new names, with the tiers they are for."""

    def models(tier: str) -> list[str]:
        built_in = [entry.alternative for entry in REGISTRY if tier in entry.tiers]
        return built_in + [name for name, tiers in (more or {}).items() if tier in tiers]

    return {
        "free": Tier(models=models("free"), default_model=LOCAL, requests_per_minute=10, tokens_per_minute=20_000),
        "pro": Tier(models=models("pro"), default_model=DEFAULT_ALTERNATIVE, requests_per_minute=60,
                    tokens_per_minute=200_000),
        "enterprise": Tier(models=models("enterprise"), default_model=DEFAULT_ALTERNATIVE, requests_per_minute=600,
                           tokens_per_minute=2_000_000),
    }  # fmt: skip
