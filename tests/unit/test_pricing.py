"""The price table: exact decimal costs from the shipped data file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from errors import ConfigurationError
from monitoring.pricing import PriceTable, Usage
from settings import Settings

SHIPPED = PriceTable.from_file(Settings(_env_file=None).price_table_path)


def test_cost_of_a_known_gpt_4o_mini_call_to_the_fraction_of_a_cent() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=200)

    # 800 x $0.15/M + 200 x $0.075/M + 500 x $0.60/M
    assert SHIPPED.cost("gpt-4o-mini", usage) == Decimal("0.000435")


def test_dated_snapshot_names_use_their_base_models_price() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)

    assert SHIPPED.cost("gpt-4o-2024-08-06", usage) == Decimal("12.50")
    assert SHIPPED.cost("gpt-4o-mini-2024-07-18", usage) == Decimal("0.75")


def test_every_shipped_default_model_is_priced() -> None:
    settings = Settings(_env_file=None)
    for model in (settings.openai_model, settings.gpt4_model, settings.gemini_model, settings.local_model_name):
        assert SHIPPED.price_of(model) is not None, model


def test_an_unknown_model_has_no_cost_rather_than_zero() -> None:
    assert SHIPPED.cost("some-new-model", Usage(input_tokens=10)) is None


def test_a_broken_price_file_is_a_configuration_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "prices.toml"
    broken.write_text('[models."x"]\ninput = "abc"\noutput = "1"\n')

    with pytest.raises(ConfigurationError, match=r"prices\.toml"):
        PriceTable.from_file(broken)
