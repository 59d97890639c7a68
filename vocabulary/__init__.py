"""The server's vocabulary, each name written once: the model alternatives, their registry and the
ladders (``vocabulary.models``), the configurable ids with their ranges and the prompt styles
(``vocabulary.configurable``), why an attempt failed and what that means for breakers, retries
and alerts (``vocabulary.causes``), how a call ended (``vocabulary.outcomes``), the metadata
keys the server stamps on a run (``vocabulary.run_metadata``), and the records every layer
passes around (``vocabulary.records``).

This package is the bottom layer: everything else may import it, and it imports nothing of ours.
The strings are part of the contract (clients send them, records and metrics store them), so
change one only with its old spelling kept working.
"""

from vocabulary.causes import Cause, cause_of
from vocabulary.configurable import (
    CONCISE_STYLE,
    CONFIGURABLE_IDS,
    DEFAULT_STYLE,
    DETAILED_STYLE,
    MODEL_ID,
    PROMPT_STYLES,
    STYLE_ID,
    TEMPERATURE_ID,
    TEMPERATURE_RANGE,
)
from vocabulary.models import (
    ALTERNATIVES,
    AUTO,
    DEFAULT_ALTERNATIVE,
    DEFAULT_LADDER,
    FLOOR,
    GEMINI,
    GPT4,
    LOCAL,
    OPENAI,
    REGISTRY,
    ModelEntry,
    ModelSpec,
)
from vocabulary.outcomes import Outcome

__all__ = [
    "ALTERNATIVES",
    "AUTO",
    "CONCISE_STYLE",
    "CONFIGURABLE_IDS",
    "DEFAULT_ALTERNATIVE",
    "DEFAULT_LADDER",
    "DEFAULT_STYLE",
    "DETAILED_STYLE",
    "FLOOR",
    "GEMINI",
    "GPT4",
    "LOCAL",
    "MODEL_ID",
    "OPENAI",
    "PROMPT_STYLES",
    "REGISTRY",
    "STYLE_ID",
    "TEMPERATURE_ID",
    "TEMPERATURE_RANGE",
    "Cause",
    "ModelEntry",
    "ModelSpec",
    "Outcome",
    "cause_of",
]
