"""``KeyRotation``: which of a deployment's API keys the next call uses, and which keys are out.

A deployment with several keys (a models file's ``api_key_env = ["A", "B"]``) takes them in
turn. A key answered with 401 or 403 leaves the rotation at once: the call goes again with the
next key, without counting against the deployment's breaker (the endpoint is fine; the key is
not), and listeners hear of it once (an alert), until the key answers again. After ``probe_s``
it is back in turn for one call, a probe: a success takes it back, another refusal puts it out
for ``probe_s`` more. A deployment whose keys are all out is skipped (cause ``auth``) until the
first one is due for its probe. Touched from the event loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KeyChange:
    endpoint: str
    key: str  # the name of the variable holding it, never the key
    revoked: bool  # True: out of rotation; False: answering again
    detail: str


@dataclass
class _Keys:
    turn: int = 0
    out_until: dict[int, float] = field(default_factory=dict)  # key index -> when its probe is due


class KeyRotation:
    def __init__(self, probe_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.probe_s = probe_s
        self.clock = clock
        self.listeners: list[Callable[[KeyChange], None]] = []
        self._keys: dict[str, _Keys] = {}

    def pick(self, endpoint: str, count: int) -> int | None:
        """The key the next call of ``endpoint`` uses (its index among ``count``), or None when
        every key is out and none is due for a probe."""
        if count < 2:
            return 0
        keys = self._keys.setdefault(endpoint, _Keys())
        now = self.clock()
        for step in range(count):
            index = (keys.turn + step) % count
            if keys.out_until.get(index, now) <= now:
                keys.turn = index + 1
                return index
        return None

    def refused(self, endpoint: str, index: int, name: str, detail: str) -> None:
        """The provider refused key ``index`` (401 or 403): out until its probe."""
        keys = self._keys.setdefault(endpoint, _Keys())
        first = index not in keys.out_until
        keys.out_until[index] = self.clock() + self.probe_s
        if first:
            self._tell(KeyChange(endpoint, name, True, detail))

    def answered(self, endpoint: str, index: int, name: str) -> None:
        """A call with key ``index`` went through: back in rotation if it was out (its probe)."""
        keys = self._keys.get(endpoint)
        if keys is not None and keys.out_until.pop(index, None) is not None:
            self._tell(KeyChange(endpoint, name, False, "answers again"))

    def usable(self, endpoint: str, count: int) -> bool:
        """Whether a key of ``endpoint`` is in rotation now (without taking a turn)."""
        keys = self._keys.get(endpoint)
        now = self.clock()
        return keys is None or any(keys.out_until.get(i, now) <= now for i in range(count))

    def out(self, endpoint: str) -> list[int]:
        keys = self._keys.get(endpoint)
        return sorted(keys.out_until) if keys is not None else []

    def _tell(self, change: KeyChange) -> None:
        for listener in self.listeners:
            listener(change)
