"""``PriceTable``: what a call cost, from a data file of per-model prices, in exact decimals."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from errors import ConfigurationError

_PER_TOKENS = Decimal(1_000_000)
SHIPPED_PRICES = Path(__file__).with_name("prices.toml")  # package data, so an install carries it


@dataclass(frozen=True)
class Price:
    input: Decimal
    cached_input: Decimal
    output: Decimal


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens, reported by reasoning models

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class PriceTable:
    def __init__(self, prices: dict[str, Price]):
        self._prices = dict(prices)

    @classmethod
    def from_file(cls, path: Path) -> PriceTable:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            prices = {
                name: Price(Decimal(p["input"]), Decimal(p.get("cached_input", p["input"])), Decimal(p["output"]))
                for name, p in data.get("models", {}).items()
            }
        except (OSError, tomllib.TOMLDecodeError, KeyError, ArithmeticError) as exc:
            raise ConfigurationError(
                f"cannot read the price table {path}: {exc}; fix the file or set LLM_SERVER_PRICE_TABLE_PATH"
            ) from exc
        return cls(prices)

    def price_of(self, model: str) -> Price | None:
        # Providers report dated snapshots ("gpt-4o-mini-2024-07-18"); fall back to the base name.
        if model in self._prices:
            return self._prices[model]
        base = max((name for name in self._prices if model.startswith(name + "-")), key=len, default=None)
        return self._prices[base] if base else None

    def cost(self, model: str, usage: Usage) -> Decimal | None:
        """USD for one call, or None when the model is not in the table."""
        price = self.price_of(model)
        if price is None:
            return None
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        return (
            (usage.input_tokens - cached) * price.input
            + cached * price.cached_input
            + usage.output_tokens * price.output
        ) / _PER_TOKENS
