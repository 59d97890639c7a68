"""``KeywordFilter``: the seed's exercise handler that watches answers for configured words.

``flag`` mode logs the match and counts it; ``block`` mode also fails the model call with
``ContentBlocked`` (cause ``content_filter``), so the fallback ladder asks the next model
instead. This is the one handler whose job is to change an answer. It keeps no state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult

from callbacks.usage import answer_of
from errors import ContentBlocked

logger = logging.getLogger("llm_server.keyword_filter")

FilterMode = Literal["flag", "block"]


class KeywordFilter(AsyncCallbackHandler):
    ignore_chain = True
    run_inline = True

    def __init__(
        self,
        words: Sequence[str],
        mode: FilterMode = "flag",
        on_match: Callable[[str, list[str]], None] | None = None,
    ):
        self.words = [w for w in (w.strip() for w in words) if w]
        self.mode = mode
        self.on_match = on_match
        # Substring match, case-insensitive: word boundaries do not exist in Korean text.
        self._pattern = re.compile("|".join(re.escape(w) for w in self.words), re.IGNORECASE) if self.words else None
        self.raise_error = mode == "block"

    def matches(self, text: str) -> list[str]:
        if self._pattern is None:
            return []
        return sorted({m.group(0).casefold() for m in self._pattern.finditer(text)})

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        found = self.matches(answer_of(response))
        if not found:
            return
        model = str((kwargs.get("metadata") or {}).get("ls_model_name") or "model")
        logger.warning("answer of run %s contains filtered words %s (%s)", run_id, found, self.mode)
        if self.on_match is not None:
            self.on_match(model, found)
        if self.mode == "block":
            raise ContentBlocked(f"the answer contained filtered words {found}")
