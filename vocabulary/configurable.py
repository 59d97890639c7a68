"""The ``configurable`` ids the chains declare, with their allowed values, ranges and defaults."""

from __future__ import annotations

MODEL_ID = "llm_model"  # one of ``vocabulary.models.ALTERNATIVES`` or ``auto``
STYLE_ID = "prompt_style"  # one of PROMPT_STYLES
TEMPERATURE_ID = "llm_temperature"  # a number in TEMPERATURE_RANGE
CONFIGURABLE_IDS = (MODEL_ID, STYLE_ID, TEMPERATURE_ID)

TEMPERATURE_RANGE = (0.0, 2.0)

DEFAULT_STYLE = "default"
DETAILED_STYLE = "detailed"
CONCISE_STYLE = "concise"
PROMPT_STYLES = (DEFAULT_STYLE, DETAILED_STYLE, CONCISE_STYLE)
