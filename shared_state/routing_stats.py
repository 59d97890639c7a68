"""Routing statistics shared by replicas: the bandit's arms and the answers feedback refers to.

``BanditSync`` applies each observation to ``llm-server:arm:<type>:<model>`` atomically (a Lua
script doing the same discounted update as ``ModelBandit.observe``) and reloads every arm into
the local bandit once a second, so each replica routes on everyone's experience, at most a
second old. ``RedisAnswerBook`` keeps each answer for a day, so feedback can reach any replica,
once. With Redis away both fall back to this process's own memory.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from monitoring.background_tasks import BackgroundTasks
from policy.answer_book import AlreadyRated, Answer, MemoryAnswerBook, UnknownRun
from policy.bandit import ModelBandit
from shared_state.link import Down, RedisLink

logger = logging.getLogger("llm_server.shared_state")

ARMS = "llm-server:arms"
ARM_PREFIX = "llm-server:arm:"
ANSWER_PREFIX = "llm-server:answer:"
ANSWER_TTL_S = 86_400

_OBSERVE = """
local evidence = tonumber(redis.call('HGET', KEYS[1], 'evidence') or '0')
local weight = tonumber(redis.call('HGET', KEYS[1], 'weight') or '0')
local discount = tonumber(ARGV[3])
evidence = evidence * discount + tonumber(ARGV[1]) * tonumber(ARGV[2])
weight = weight * discount + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'evidence', tostring(evidence), 'weight', tostring(weight), 'prior', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'observations', 1)
redis.call('SADD', KEYS[2], KEYS[1])
return 1
"""

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return nil end
if redis.call('HSETNX', KEYS[1], 'rated', '1') == 0 then return 'rated' end
return redis.call('HMGET', KEYS[1], 'question_type', 'alternative', 'model', 'user_id')
"""


class BanditSync:
    def __init__(self, link: RedisLink, bandit: ModelBandit, *, refresh_s: float = 1.0):
        self.link = link
        self.bandit = bandit
        self.refresh_s = refresh_s
        self._observe = link.client.register_script(_OBSERVE)
        self._tasks = BackgroundTasks()
        self._refresher: asyncio.Task[None] | None = None
        bandit.on_observe = self.observed

    def observed(self, kind: str, model: str, reward: float, weight: float, prior: float) -> None:
        keys = [f"{ARM_PREFIX}{kind}:{model}", ARMS]
        args = [reward, weight, self.bandit.discount, prior]
        self._tasks.start(self.link.attempt(lambda r: self._observe(keys=keys, args=args, client=r)), "share arm")

    async def refresh(self) -> None:
        """Load every shared arm into the local bandit."""
        arms = await self.link.attempt(_all_arms)
        if isinstance(arms, Down):
            return
        for key, fields in arms.items():
            kind, _, model = key.removeprefix(ARM_PREFIX).rpartition(":")  # a tenant's kind may hold ":"
            if fields:
                self.bandit.load(
                    kind,
                    model,
                    prior=float(fields["prior"]),
                    evidence=float(fields["evidence"]),
                    weight=float(fields["weight"]),
                    observations=int(fields["observations"]),
                )

    def start(self) -> None:
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever(), name="bandit-sync")

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a bad entry must not stop the sharing
                logger.exception("reloading the shared routing statistics failed")
            await asyncio.sleep(self.refresh_s)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        await self._tasks.drain()


async def _all_arms(client: Redis) -> dict[str, dict[str, str]]:
    keys = sorted(str(key) for key in await client.smembers(ARMS))
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        values = await pipe.execute()
    return dict(zip(keys, values, strict=True))


class RedisAnswerBook:
    def __init__(self, link: RedisLink, local: MemoryAnswerBook | None = None):
        self.link = link
        self.local = local or MemoryAnswerBook()  # also used while Redis is away
        self._claim = link.client.register_script(_CLAIM)
        self._tasks = BackgroundTasks()

    def remember(self, run_id: str, answer: Answer) -> None:
        self.local.remember(run_id, answer)
        self._tasks.start(self.link.attempt(lambda r: _store(r, run_id, answer)), f"share answer {run_id}")

    async def claim(self, run_id: str, user_id: str | None) -> Answer:
        found = await self.link.attempt(
            lambda r: self._claim(keys=[ANSWER_PREFIX + run_id], args=[user_id or ""], client=r)
        )
        if isinstance(found, Down):
            return await self.local.claim(run_id, user_id)
        if found is None:
            raise UnknownRun(run_id)
        if found == "rated":
            raise AlreadyRated(run_id)
        question_type, alternative, model, owner = found
        return Answer(question_type, alternative, model, owner or None)

    async def drain(self) -> None:
        await self._tasks.drain()


async def _store(client: Redis, run_id: str, answer: Answer) -> None:
    key = ANSWER_PREFIX + run_id
    fields = ["question_type", answer.question_type, "alternative", answer.alternative, "model", answer.model,
              "user_id", answer.user_id or ""]  # fmt: skip
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, items=fields)
        pipe.expire(key, ANSWER_TTL_S)
        await pipe.execute()
