"""``SharedState``: what replicas share when ``REDIS_URL`` is set, built once per process. Without
it every part is ``None`` and each component keeps its state in memory (the embedded default)."""

from __future__ import annotations

from dataclasses import dataclass, field

from policy.answer_book import AnswerBook
from policy.bandit import ModelBandit
from settings import Settings
from shared_state.alerts import RedisAlertClaim
from shared_state.breakers import BreakerSync
from shared_state.budgets import RedisBudgetLedger
from shared_state.limits import RedisCounters
from shared_state.link import RedisLink
from shared_state.routing_stats import BanditSync, RedisAnswerBook
from shared_state.spend import RedisSpendLedger


@dataclass
class SharedState:
    link: RedisLink | None = None
    _bandits: list[BanditSync] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedState:
        if settings.redis_url is None:
            return cls()
        url = settings.redis_url.get_secret_value()
        link = RedisLink(url, timeout_s=settings.redis_timeout_s, retry_s=settings.redis_retry_s)
        return cls(link)

    def breakers(self) -> BreakerSync | None:
        return BreakerSync(self.link) if self.link else None

    def spend(self) -> RedisSpendLedger | None:
        return RedisSpendLedger(self.link) if self.link else None

    def alert_claim(self, cooldown_s: float) -> RedisAlertClaim | None:
        return RedisAlertClaim(self.link, cooldown_s) if self.link else None

    def budget_ledger(self, hold_ttl_s: float) -> RedisBudgetLedger | None:
        return RedisBudgetLedger(self.link, hold_ttl_s=hold_ttl_s) if self.link else None

    def limit_counters(self) -> RedisCounters | None:
        return RedisCounters(self.link) if self.link else None

    def answers(self) -> AnswerBook | None:
        return RedisAnswerBook(self.link) if self.link else None

    def share(self, bandit: ModelBandit) -> None:
        """Share ``bandit``'s arms with the other replicas."""
        if self.link is not None:
            self._bandits.append(BanditSync(self.link, bandit))

    async def start(self) -> None:
        for sync in self._bandits:
            sync.start()

    async def close(self) -> None:
        for sync in self._bandits:
            await sync.close()
        if self.link is not None:
            await self.link.close()
