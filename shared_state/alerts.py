"""``RedisAlertClaim``: an alert is delivered by one replica only.

Every replica sees the same incident (the same model failing, the same breaker opening) and
raises its own alert; before delivering, each claims ``llm-server:alert:<subject>:<state>`` with
SET NX for the cooldown, and only the replica that got it sends. With Redis away every replica
delivers its own: better twice than never.
"""

from __future__ import annotations

from monitoring.alert import Alert
from shared_state.link import Down, RedisLink

PREFIX = "llm-server:alert:"


class RedisAlertClaim:
    def __init__(self, link: RedisLink, cooldown_s: float):
        self.link = link
        self.hold_ms = max(60_000, int(cooldown_s * 1000))

    async def __call__(self, alert: Alert) -> bool:
        key = f"{PREFIX}{alert.key}:{alert.state}"
        claimed = await self.link.attempt(lambda r: r.set(key, alert.id, nx=True, px=self.hold_ms))
        return True if isinstance(claimed, Down) else bool(claimed)
