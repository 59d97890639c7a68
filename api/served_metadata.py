"""What a LangServe route's client got, told in its own response: the rung that answered
(``served_by``: model, alternative, ladder, rung, attempts) and what the request's model calls
used (``usage``: calls, tokens, cost, failed attempts included), from the request's
``ServingReport``.

- ``/invoke`` and ``/batch``: in the response's ``metadata`` (a batch: in each item's entry of
  ``metadata.responses``, matched by run id);
- ``/stream``: as ``metadata`` events, LangServe's own kind, which ``RemoteRunnable`` and
  LangServe's clients skip: ``served_by`` as soon as the answering rung's first chunk is out, and
  as the last event, before ``end`` (or before the ``error`` event of a stream that broke off),
  ``usage`` and ``provenance``: how the answer came to be (``chains.serving_report.provenance``:
  complete from one model, continued by another after a break, or interrupted), with each
  contributing model's part and usage; and ``cache``, the response cache's word, when it was asked.
"""

from __future__ import annotations

import json
from typing import Any

from chains.serving_report import ServingReport

_END_EVENT = b"event: end"
_ERROR_EVENT = b"event: error"
_METADATA_EVENT = b"event: metadata"


def route_kind(path: str) -> str | None:
    """``invoke``, ``batch`` or ``stream`` for a LangServe route's endpoint; None for anything else."""
    for kind in ("invoke", "batch", "stream"):
        if path.endswith(f"/{kind}"):
            return kind
    return None


def _told(report: ServingReport, run_id: str | None) -> dict[str, Any]:
    served = report.served_for(run_id)
    usage = report.usage.get(run_id)
    return {
        "served_by": served.as_dict() if served is not None else None,
        "usage": usage.as_dict() if usage is not None else None,
    }


def annotate_response(body: bytes, report: ServingReport) -> bytes:
    """An ``/invoke`` or ``/batch`` body with ``served_by`` and ``usage`` in its metadata."""
    try:
        content = json.loads(body)
    except ValueError:
        return body
    metadata = content.get("metadata") if isinstance(content, dict) else None
    if not isinstance(metadata, dict):
        return body
    items = metadata.get("responses")
    if isinstance(items, list):  # a batch: one entry per item
        for item in items:
            if isinstance(item, dict):
                item.update(_told(report, item.get("run_id")))
    else:
        metadata.update(_told(report, metadata.get("run_id")))
    return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _event(data: dict[str, Any]) -> bytes:
    return b"event: metadata\r\ndata: " + json.dumps(data, ensure_ascii=True).encode("ascii") + b"\r\n\r\n"


class StreamAnnotator:
    """Adds the ``served_by`` and ``usage`` events to one ``/stream`` response as it passes."""

    def __init__(self, report: ServingReport):
        self.report = report
        self.announced = False
        self.ended = False

    def feed(self, body: bytes) -> bytes:
        if not self.announced and self.report.streaming is not None:
            self.announced = True
            # After LangServe's own first event (the run id), which clients may expect first.
            at = body.find(b"\r\n\r\n", body.find(_METADATA_EVENT)) + 4 if _METADATA_EVENT in body else 0
            body = body[:at] + _event({"served_by": self.report.streaming.as_dict()}) + body[at:]
        if not self.ended and (_END_EVENT in body or _ERROR_EVENT in body):
            final = self._final()
            # A stream refused before any answer (its error event is all there is) has no story to tell.
            if _END_EVENT in body or final["provenance"] is not None:
                self.ended = True
                last = body.find(_END_EVENT) if _END_EVENT in body else body.find(_ERROR_EVENT)
                body = body[:last] + _event(final) + body[last:]
        return body

    def _final(self) -> dict[str, Any]:
        run_id = self.report.streaming.run_id if self.report.streaming else None
        usage = self.report.usage.get(run_id)
        if usage is None and len(self.report.usage) == 1:
            usage = next(iter(self.report.usage.values()))
        final: dict[str, Any] = {
            "usage": usage.as_dict() if usage is not None else None,
            "provenance": self.report.provenance_for(run_id),
        }
        if self.report.cache:  # X-Cache left with the headers, before the ladder asked the cache
            final["cache"] = ",".join(self.report.cache)
        return final
