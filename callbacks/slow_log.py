"""``SlowCallLog``: the seed's exercise of saving slow responses, as JSON Lines.

Every call slower than the threshold appends one line to the file. Writing happens on a
dedicated thread, so the event loop never waits on the disk; lines keep their order.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from pathlib import Path

from vocabulary.records import CallRecord

logger = logging.getLogger("llm_server.slow_log")


class SlowCallLog:
    def __init__(self, path: Path, threshold_s: float):
        self.path = Path(path)
        self.threshold_s = threshold_s
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="slow-log")

    def observe(self, record: CallRecord) -> None:
        if record.duration_s <= self.threshold_s:
            return
        line = json.dumps(
            {
                "at": record.started_at.isoformat(),
                "run_id": record.run_id,
                "request_id": record.request_id,
                "route": record.route,
                "model": record.model,
                "outcome": record.outcome,
                "duration_s": round(record.duration_s, 4),
                "first_token_s": record.first_token_s,
                "prompt_chars": record.prompt_chars,
                "answer_chars": record.answer_chars,
                "threshold_s": self.threshold_s,
            },
            ensure_ascii=False,
        )
        self._writer.submit(self._append, line)

    def _append(self, line: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        except OSError:
            logger.exception("cannot write the slow-call log %s", self.path)

    def flush(self) -> None:
        """Wait until every line submitted so far is written."""
        self._writer.submit(lambda: None).result()

    def close(self) -> None:
        """Finish writing what was submitted."""
        self._writer.shutdown(wait=True)
