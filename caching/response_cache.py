"""``ResponseCache``: the ladders' exact-match answer cache (``resilience.ladder_policies.AnswerCache``).

At the start of a run the ladder asks ``lookup``; a run whose metadata carries no
``RESPONSE_CACHE`` directive (the door decided: ``caching.cache_switch``) is not cached (None).
Otherwise the request's key (``caching.cache_key``) is looked up in the store: a hit is an answer
no older than the directive's ``max_age_s``; a ``bypass`` is a client that asked for a fresh
answer. After a fresh answer the ladder calls ``remember``, which keeps it for ``ttl_s`` (unless
the client said ``no-store``), written off the request path.

A hit costs nothing and calls no model. It is published as a ``CallRecord`` like every call, with
outcome ``cached``, provider ``cache``, the cached answer's model and alternative, no tokens, cost
0, and in its metadata ``cache``: what the answer cost when it was made (``saved_usd``) and its
age. Each lookup is counted in the metrics (hits, misses, bypasses, and the money hits saved).

State: the store, and the writes still in flight (``drain`` waits for them); nothing per request.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from opentelemetry import trace

from caching.answer_store import AnswerStore, StoredAnswer
from caching.cache_key import KeyParts, cache_key
from caching.cache_switch import CacheDirective
from caching.cached_answer import CachedAnswer
from monitoring.background_tasks import BackgroundTasks
from tracing.call_spans import span_ids
from vocabulary import Outcome
from vocabulary.records import CallRecord
from vocabulary.run_metadata import (
    ACCESS,
    ALTERNATIVE,
    CACHE_HIT,
    DOOR,
    LADDER,
    LADDER_RUNG,
    LANGSERVE_DOOR,
    REQUEST_ID,
    RESPONSE_CACHE,
    ROOT_RUN_ID,
    ROUTE,
    SPAN_ID,
    TIER,
    TRACE_ID,
)

logger = logging.getLogger("llm_server.cache")

CACHE_PROVIDER = "cache"  # the provider of a hit's record
HIT, MISS, BYPASS = "hit", "miss", "bypass"
# Kept in the record's own columns, or of no use later (as the call recorder leaves them out).
_COLUMNS = (REQUEST_ID, ROOT_RUN_ID, ROUTE, LADDER, LADDER_RUNG, ALTERNATIVE, ACCESS)


@dataclass(frozen=True)
class Lookup:
    """The cache's word on one run (``resilience.ladder_policies.CacheLookup``)."""

    result: str
    key: str
    directive: CacheDirective
    answer: CachedAnswer | None = None  # on a hit

    @property
    def output(self) -> Any:
        return None if self.answer is None else self.answer.output()

    @property
    def model(self) -> str:
        return "" if self.answer is None else self.answer.model

    @property
    def alternative(self) -> str:
        return "" if self.answer is None else self.answer.alternative

    @property
    def store(self) -> bool:
        return self.result != HIT and self.directive.store

    def chunks(self) -> list[Any]:
        return [] if self.answer is None else self.answer.chunks()


def messages_of(input: Any) -> list[BaseMessage] | None:
    """A ladder's input as chat messages (a prompt, messages, or a plain question); None for
    another input, which is then not cached."""
    if isinstance(input, PromptValue):
        return input.to_messages()
    if isinstance(input, str):
        return [HumanMessage(content=input)]
    if isinstance(input, Sequence) and input and all(isinstance(m, BaseMessage) for m in input):
        return list(input)
    return None


class ResponseCache:
    def __init__(
        self,
        store: AnswerStore,
        *,
        publish: Callable[[CallRecord], None],
        observe: Callable[[str, str, float], None],
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ):
        """``publish`` hands a hit's record to the monitoring's listeners; ``observe(result, route,
        saved_usd)`` counts a lookup in the metrics; ``clock``: wall-clock seconds, the answers'
        ages and expiries (replicas sharing Redis must agree on it); ``timer`` times a hit."""
        self.store = store
        self.publish = publish
        self.observe = observe
        self.clock = clock
        self.timer = timer
        self._writes = BackgroundTasks()

    async def lookup(
        self, ladder: str, input: Any, config: Mapping[str, Any], options: Mapping[str, Any]
    ) -> Lookup | None:
        began = self.timer()
        metadata: Mapping[str, Any] = config.get("metadata") or {}
        directive = CacheDirective.from_metadata(metadata.get(RESPONSE_CACHE))
        if directive is None:  # the door did not switch it on: the common case, kept cheap
            return None
        messages = messages_of(input)
        if messages is None:
            return None
        route = str(metadata.get(ROUTE) or "")
        parts = KeyParts(
            door=str(metadata.get(DOOR) or LANGSERVE_DOOR),
            route=route,
            ladder=ladder,
            scope=directive.scope,
            tier=str(metadata.get(TIER) or ""),
            messages=messages,
            configurable=config.get("configurable") or {},
            options=options,
        )
        key = cache_key(parts)
        if not directive.lookup:
            self.observe(BYPASS, route, 0.0)
            return Lookup(BYPASS, key, directive)
        now = self.clock()
        stored = await self.store.get(key, now)
        answer = CachedAnswer.from_json(stored.payload) if stored is not None else None
        age = max(0.0, now - stored.stored_at) if stored is not None else 0.0
        if answer is None or stored is None or age > directive.max_age_s:
            self.observe(MISS, route, 0.0)
            return Lookup(MISS, key, directive)
        saved = answer.cost_usd or Decimal(0)
        self.observe(HIT, route, float(saved))
        self.publish(self._hit_record(ladder, config, messages, answer, now, age, self.timer() - began))
        return Lookup(HIT, key, directive, answer)

    def remember(self, lookup: Any, output: Any, *, model: str, alternative: str, cost: Decimal | None) -> None:
        """Keep ``output`` for ``lookup``'s key, written in the background (a failed write is a
        later miss, logged by the store)."""
        if not isinstance(lookup, Lookup) or not lookup.store or lookup.directive.ttl_s <= 0:
            return
        answer = CachedAnswer.of(output, model=model, alternative=alternative, cost=cost)
        if answer is None:
            return
        now = self.clock()
        stored = StoredAnswer(answer.to_json(), now, now + lookup.directive.ttl_s)
        self._writes.start(self.store.put(lookup.key, stored), "response cache write")

    def _hit_record(
        self,
        ladder: str,
        config: Mapping[str, Any],
        messages: list[BaseMessage],
        answer: CachedAnswer,
        at: float,
        age_s: float,
        duration_s: float,
    ) -> CallRecord:
        metadata: Mapping[str, Any] = config.get("metadata") or {}
        kept = {k: v for k, v in metadata.items() if k not in _COLUMNS and not k.startswith(("__", "ls_"))}
        saved = None if answer.cost_usd is None else str(answer.cost_usd)
        kept[CACHE_HIT] = {"saved_usd": saved, "age_s": round(age_s, 3)}
        ids = span_ids(trace.get_current_span())  # the ladder's, when tracing is on: the hit's trace
        if ids is not None:
            kept[TRACE_ID], kept[SPAN_ID] = ids
        return CallRecord(
            run_id=str(uuid.uuid4()),
            root_run_id=metadata.get(ROOT_RUN_ID),
            request_id=metadata.get(REQUEST_ID),
            route=metadata.get(ROUTE),
            ladder=ladder,
            rung=None,  # no rung was asked
            alternative=answer.alternative,
            provider=CACHE_PROVIDER,
            model=answer.model,
            started_at=datetime.fromtimestamp(at, UTC),
            duration_s=duration_s,
            first_token_s=None,
            input_tokens=0,
            output_tokens=0,
            cached_input_tokens=0,
            reasoning_tokens=0,
            cost_usd=Decimal(0),
            outcome=Outcome.CACHED,
            cause=None,
            error=None,
            prompt_chars=sum(len(m.text) for m in messages),
            answer_chars=len(answer.text),
            tags=list(config.get("tags") or []),
            metadata=kept,
        )

    async def drain(self) -> None:
        """Wait until every answer kept so far is written (tests, and at shutdown)."""
        await self._writes.drain()

    async def close(self) -> None:
        await self.drain()
        await self.store.close()
