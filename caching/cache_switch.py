"""``CacheSwitch``: whether the response cache serves one request, and how, decided by the door.

The operator switches caching on per tier (``tiers``) and per key (a key's ``cache = true|false``
overrides its tier's); a client switches it on for its own request with ``Cache-Control:
max-age=N`` (when ``opt_in``: an answer at most N seconds old, and never older than the TTL), and
asks for a fresh answer with ``no-cache`` (the fresh answer is kept) or ``no-store`` (it is not).
A key set to ``cache = false`` is never cached, whatever its client sends.

The decision is a ``CacheDirective`` the door stamps in the run's metadata (``RESPONSE_CACHE``),
where the ladder's cache reads it; a client's metadata lives apart (under ``client``), so no
client can stamp one for itself. Scope: the API key's id, ``shared`` when the operator shares one
cache between every key, ``open`` on a server without keys.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vocabulary.run_metadata import CACHE_RESERVED_TOKENS

SHARED_SCOPE = "shared"
OPEN_SCOPE = "open"


@dataclass(frozen=True)
class CacheControl:
    """What a request's ``Cache-Control`` header asks of the cache (RFC 9111's request directives)."""

    max_age_s: int | None = None
    no_cache: bool = False
    no_store: bool = False

    @classmethod
    def parse(cls, header: str | None) -> CacheControl:
        """Unknown directives, and a ``max-age`` that is not a whole number of seconds, are ignored."""
        max_age, no_cache, no_store = None, False, False
        for directive in (header or "").split(","):
            name, _, value = directive.strip().partition("=")
            name = name.strip().lower()
            if name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "max-age":
                value = value.strip().strip('"')
                if value.isdigit():
                    max_age = int(value)
        return cls(max_age, no_cache, no_store)


@dataclass(frozen=True)
class CacheDirective:
    """One run's caching: ``scope`` (whose cache), ``max_age_s`` (the oldest answer it takes),
    ``ttl_s`` (how long its fresh answer is kept), ``lookup`` (False: a fresh answer was asked
    for), ``store`` (whether the fresh answer is kept), ``reserved_tokens`` (its admission's
    estimate, given back to the key's token limit on a hit)."""

    scope: str
    max_age_s: float
    ttl_s: float
    lookup: bool = True
    store: bool = True
    reserved_tokens: int = 0

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)  # field names are the keys; reserved_tokens is CACHE_RESERVED_TOKENS

    @classmethod
    def from_metadata(cls, value: Any) -> CacheDirective | None:
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                scope=str(value["scope"]),
                max_age_s=float(value["max_age_s"]),
                ttl_s=float(value["ttl_s"]),
                lookup=bool(value.get("lookup", True)),
                store=bool(value.get("store", True)),
                reserved_tokens=int(value.get(CACHE_RESERVED_TOKENS, 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class CacheSwitch:
    tiers: Collection[str]  # tiers cached by default
    ttl_s: float
    shared: bool = False
    opt_in: bool = True  # a client may switch it on for its request (Cache-Control: max-age)

    def decide(
        self,
        *,
        tier: str,
        key_id: str | None,
        key_cache: bool | None,
        cache_control: str | None,
        reserved_tokens: int = 0,
    ) -> CacheDirective | None:
        """The directive for a request of ``tier`` with ``key_id`` (None: an open server), whose
        key says ``key_cache`` (None: as its tier), sending ``cache_control``; None: not cached."""
        if key_cache is False:
            return None
        asked = CacheControl.parse(cache_control)
        on = key_cache if key_cache is not None else tier in self.tiers
        if not on and not (self.opt_in and asked.max_age_s is not None):
            return None
        max_age = self.ttl_s if asked.max_age_s is None else min(float(asked.max_age_s), self.ttl_s)
        scope = SHARED_SCOPE if self.shared else key_id or OPEN_SCOPE
        return CacheDirective(
            scope=scope,
            max_age_s=max_age,
            ttl_s=self.ttl_s,
            lookup=not (asked.no_cache or asked.no_store),
            store=not asked.no_store,
            reserved_tokens=reserved_tokens,
        )
