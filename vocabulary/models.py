"""The model alternatives clients choose with ``llm_model``, and the ladders built from them.

An alternative is a short stable key; the concrete model behind it is a setting
(``providers.catalog``). ``local`` needs no key and no network, so it is every ladder's floor.
"""

from __future__ import annotations

OPENAI = "openai"
GPT4 = "gpt4"
GEMINI = "gemini"
LOCAL = "local"
ALTERNATIVES = (OPENAI, GPT4, GEMINI, LOCAL)

AUTO = "auto"  # let adaptive routing pick among the caller's models; not an alternative of its own
DEFAULT_ALTERNATIVE = OPENAI  # ``llm_model`` when the client sends none

# The seed's ladder: gpt-4o-mini (short timeout) -> Gemini flash -> gpt-4o -> local.
DEFAULT_LADDER = (OPENAI, GEMINI, GPT4, LOCAL)
FLOOR = LOCAL  # the rung a ladder must end on
