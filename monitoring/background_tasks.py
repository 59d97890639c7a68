"""``BackgroundTasks``: work a synchronous callback starts on the event loop and does not wait for
(charging tokens, adding spend, sharing an observation), kept referenced until it finishes so it
is neither garbage-collected mid-way nor lost at shutdown (``drain``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger("llm_server.background")


class BackgroundTasks:
    def __init__(self) -> None:
        self._pending: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a sync call on a worker thread: LangServe never makes one
            work.close()
            logger.debug("%s skipped: no event loop", what)
            return
        task = loop.create_task(work, name=what)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for everything started so far, and whatever that starts in turn."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
