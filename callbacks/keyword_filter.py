"""``KeywordFilter``: the seed's exercise handler that watches answers for configured words.

``flag`` mode logs the match and counts it; ``block`` mode also fails the model call with
``ContentBlocked`` (cause ``content_filter``), so the fallback ladder asks the next model
instead. This is the one handler whose job is to change an answer. A call that continues an
answer another model's broken stream left unfinished (``chains.ladder``) is judged with the
answer's earlier text in front, so a word split across the two is found; that text is the only
state it keeps, from the call's start to its end.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from callbacks.usage import answer_of
from errors import ContentBlocked
from vocabulary.run_metadata import ANSWER_SO_FAR

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
        self._so_far: dict[UUID, str] = {}  # by run: the text a continued answer already has

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        so_far = (metadata or {}).get(ANSWER_SO_FAR)
        if so_far and self._pattern is not None:
            self._so_far[run_id] = str(so_far)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._so_far.pop(run_id, None)

    def matches(self, text: str) -> list[str]:
        if self._pattern is None:
            return []
        return sorted({m.group(0).casefold() for m in self._pattern.finditer(text)})

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        found = self.matches(self._so_far.pop(run_id, "") + answer_of(response))
        if not found:
            return
        model = str((kwargs.get("metadata") or {}).get("ls_model_name") or "model")
        logger.warning("answer of run %s contains filtered words %s (%s)", run_id, found, self.mode)
        if self.on_match is not None:
            self.on_match(model, found)
        if self.mode == "block":
            raise ContentBlocked(f"the answer contained filtered words {found}")
