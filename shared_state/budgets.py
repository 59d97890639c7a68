"""``RedisBudgetLedger``: budget lines counted by every replica in Redis, one Lua script per step,
so a hold is checked against and added to every line at once and no two replicas can both take the
last of a budget.

Keys (``{line}`` is ``budget:subject``; a bucket is a day, or a month):

- ``llm-server:budget:{line}:spent:{bucket}``: pico-dollars spent in the bucket, and
  ``...:floor:{bucket}``: spend Redis lost and replicas put back (below); a bucket's total is both;
  kept for as long as the bucket counts in its window, and a day;
- ``llm-server:budget:{line}:holds`` (hash, hold -> pico-dollars) and ``...:expiry`` (sorted set,
  hold -> when it lapses): the calls in flight; a lapsed hold is dropped by the next step;
- ``llm-server:budget:lines``: every line with spend, for the operator's listing;
- ``llm-server:budget:epoch``: a random id, made by the first step that finds none: a Redis that
  lost its data (restarted without persistence) has a new one.

While Redis is away, steps run on this process's ``MemoryBudgetLedger``, over the totals Redis last
reported: each replica then spends against its own view, so together they can pass a limit by as
much as each other replica had left of it (the README states the bound). When Redis answers, what
was spent meanwhile is added before any other step. If Redis lost its data, each replica also
raises every bucket's floor to the last total it saw: a bucket's total only grows, so the largest
view is the best account of the spend before the loss, and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from policy.budget_ledger import Change, Counted, MemoryBudgetLedger, Reserved, Standing
from shared_state.link import Down, RedisLink

PREFIX = "llm-server:budget:"
LINES = PREFIX + "lines"
EPOCH = PREFIX + "epoch"
_DEFAULT_LIFETIME_S = 86_400 * 32

# The epoch, made if missing: KEYS[1], with ARGV[1] the one to make.
_EPOCH = """
local function epoch()
  local e = redis.call('GET', KEYS[1])
  if not e then
    e = ARGV[1]
    redis.call('SET', KEYS[1], e)
  end
  return e
end
"""

# KEYS: the epoch, then per line: holds, expiry, then per bucket of its window: spent, floor.
# ARGV: a fresh epoch, now, hold id, amount, expires at, write (1: hold when everything fits),
# line count, then per line: limit, bucket count, the hold keys' lifetime. Returns the refused
# line's index (-1: none), the epoch, then per line: held, then each bucket's total.
_RESERVE = (
    _EPOCH
    + """
local now, hold, amount, expires, write = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6] == '1'
local lines = tonumber(ARGV[7])
local k, a, refused, out, at = 2, 8, -1, {}, {}
for i = 1, lines do
  local holds, expiry = KEYS[k], KEYS[k + 1]
  local limit, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
  if #gone > 0 then
    redis.call('HDEL', holds, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now)
  end
  local held = 0
  for _, v in ipairs(redis.call('HVALS', holds)) do held = held + tonumber(v) end
  out[#out + 1] = string.format('%.0f', held)
  local spent = 0
  for j = 1, n do
    local total = tonumber(redis.call('GET', KEYS[k + 2 * j]) or '0')
    total = total + tonumber(redis.call('GET', KEYS[k + 2 * j + 1]) or '0')
    out[#out + 1] = string.format('%.0f', total)
    spent = spent + total
  end
  if refused < 0 and spent + held + amount > limit then refused = i - 1 end
  at[i] = {holds, expiry, ARGV[a + 2]}
  k, a = k + 2 + 2 * n, a + 3
end
if write and refused < 0 then
  for i = 1, lines do
    redis.call('HSET', at[i][1], hold, amount)
    redis.call('ZADD', at[i][2], expires, hold)
    redis.call('EXPIRE', at[i][1], at[i][3])
    redis.call('EXPIRE', at[i][2], at[i][3])
  end
end
table.insert(out, 1, epoch())
table.insert(out, 1, tostring(refused))
return out
"""
)

# KEYS: the epoch, then per line: holds, expiry, then per bucket of its window: spent, floor (the
# current bucket last); last, the set of lines. ARGV: a fresh epoch, hold id ('' for none), amount,
# line count, then per line: its id, bucket count, the current bucket's lifetime. Returns the
# epoch, then each line's spend before and after.
_SETTLE = (
    _EPOCH
    + """
local hold, amount, lines = ARGV[2], ARGV[3], tonumber(ARGV[4])
local k, a, out = 2, 5, {epoch()}
for i = 1, lines do
  local n = tonumber(ARGV[a + 1])
  if hold ~= '' then
    redis.call('HDEL', KEYS[k], hold)
    redis.call('ZREM', KEYS[k + 1], hold)
  end
  local spent = 0
  for j = 1, n do
    spent = spent + tonumber(redis.call('GET', KEYS[k + 2 * j]) or '0')
    spent = spent + tonumber(redis.call('GET', KEYS[k + 2 * j + 1]) or '0')
  end
  local current = KEYS[k + 2 * n]
  redis.call('INCRBY', current, amount)
  redis.call('EXPIRE', current, ARGV[a + 2])
  redis.call('SADD', KEYS[#KEYS], ARGV[a])
  out[#out + 1] = string.format('%.0f', spent)
  out[#out + 1] = string.format('%.0f', spent + tonumber(amount))
  k, a = k + 2 + 2 * n, a + 3
end
return out
"""
)

# What this replica spent while Redis was away; and, if Redis lost its data since this replica's
# epoch, each bucket's floor raised to this replica's last view of it. KEYS: the epoch, then per
# bucket: spent, floor; last, the set of lines. ARGV: a fresh epoch, this replica's epoch, then per
# bucket: amount, last seen, lifetime, line id. Returns the epoch.
_SYNC = (
    _EPOCH
    + """
local known = ARGV[2]
local e = epoch()
local restore = known ~= '' and e ~= known
for i = 1, (#KEYS - 2) / 2 do
  local spent, floor, b = KEYS[2 * i], KEYS[2 * i + 1], 2 + (i - 1) * 4
  if restore and tonumber(redis.call('GET', floor) or '0') < tonumber(ARGV[b + 2]) then
    redis.call('SET', floor, ARGV[b + 2])
  end
  redis.call('INCRBY', spent, ARGV[b + 1])
  redis.call('EXPIRE', spent, ARGV[b + 3])
  redis.call('EXPIRE', floor, ARGV[b + 3])
  redis.call('SADD', KEYS[#KEYS], ARGV[b + 4])
end
return e
"""
)


def _holds(line_id: str) -> str:
    return f"{PREFIX}{line_id}:holds"


def _expiry(line_id: str) -> str:
    return f"{PREFIX}{line_id}:expiry"


def _bucket_keys(line_id: str, bucket: str) -> list[str]:
    return [f"{PREFIX}{line_id}:spent:{bucket}", f"{PREFIX}{line_id}:floor:{bucket}"]


def _line_keys(lines: Sequence[Counted]) -> list[str]:
    keys = []
    for line in lines:
        keys += [_holds(line.line_id), _expiry(line.line_id)]
        for bucket in line.window.buckets:
            keys += _bucket_keys(line.line_id, bucket)
    return keys


class RedisBudgetLedger:
    def __init__(self, link: RedisLink, *, hold_ttl_s: float = 900.0):
        self.link = link
        self.hold_ttl_s = hold_ttl_s
        self._seen: dict[tuple[str, str], int] = {}  # each bucket's total as Redis last reported it
        self.local = MemoryBudgetLedger(base=self._seen)  # what was spent and held while Redis was away
        self._lifetimes: dict[tuple[str, str], int] = {}
        self._in_redis: set[str] = set()  # holds Redis keeps
        self._releases: list[tuple[list[Counted], str]] = []  # Redis holds to drop once it answers
        self._epoch = ""  # Redis's epoch as this replica last saw it ("": not yet)
        self._lost = False  # Redis's epoch changed: it lost its data, floors to restore
        self._outages_seen = link.outages
        self._syncing = asyncio.Lock()
        self._reserve = link.client.register_script(_RESERVE)
        self._settle = link.client.register_script(_SETTLE)
        self._sync = link.client.register_script(_SYNC)

    def _saw_epoch(self, epoch: str) -> None:
        if self._epoch and epoch != self._epoch:
            self._lost = True  # restored before the next step (``_synced``)
        else:
            self._epoch = epoch

    async def _attempt(self, script: Any, keys: list[str], args: list[Any]) -> list[str] | Down:
        """``script`` in Redis, after what waits to be synced; ``DOWN`` while Redis is away."""
        if self.link.healthy and not await self._synced():
            return Down()
        return await self.link.attempt(lambda r: script(keys=keys, args=[uuid.uuid4().hex, *args], client=r))

    def _in_step(self) -> bool:
        return (
            self.link.outages == self._outages_seen and not self._lost and not self.local.spent and not self._releases
        )

    async def _synced(self) -> bool:
        """Redis gets what was spent while it was away (and, if it lost its data, the floors back)
        before any other step, so no step reads a total missing it. One sync at a time: steps that
        wait for it find nothing left to send."""
        if self._in_step():
            return True
        async with self._syncing:
            if self._in_step():
                return True
            outages = self.link.outages
            sent = dict(self.local.spent)  # what settles locally meanwhile waits for the next sync
            buckets = sorted(set(sent) | set(self._seen))
            keys: list[str] = [EPOCH]
            args: list[Any] = [uuid.uuid4().hex, self._epoch]
            for key in buckets:
                keys += _bucket_keys(*key)
                lifetime = self._lifetimes.get(key, _DEFAULT_LIFETIME_S)
                args += [sent.get(key, 0), self._seen.get(key, 0), lifetime, key[0]]
            epoch = await self.link.attempt(lambda r: self._sync(keys=[*keys, LINES], args=args, client=r))
            if isinstance(epoch, Down):
                return False
            for key, amount in sent.items():
                self._seen[key] = self._seen.get(key, 0) + amount
                self.local.spent[key] -= amount
                if not self.local.spent[key]:
                    del self.local.spent[key]
            self._epoch, self._lost, self._outages_seen = str(epoch), False, outages
            while self._releases:
                lines, hold_id = self._releases[0]
                if isinstance(await self._release(lines, hold_id), Down):
                    return False
                self._releases.pop(0)
            return True

    def _standings(self, lines: Sequence[Counted], reply: list[str], now: float) -> list[Standing]:
        """Each line's standing from a reserve reply (its held, then each bucket's total), noting
        the totals; what this replica held while Redis was away counts until those calls settle."""
        standings, at = [], 2
        for line in lines:
            held = int(reply[at])
            totals = [int(v) for v in reply[at + 1 : at + 1 + len(line.window.buckets)]]
            for bucket, total in zip(line.window.buckets, totals, strict=True):
                self._seen[(line.line_id, bucket)] = total
                self._lifetimes[(line.line_id, bucket)] = line.window.ttl_s
            standings.append(Standing(sum(totals), held + self.local.held_on(line, now)))
            at += 1 + len(line.window.buckets)
        return standings

    def _reserve_args(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires: float, now: float, write: bool
    ) -> list[Any]:
        args: list[Any] = [now, hold_id, amount, expires, 1 if write else 0, len(lines)]
        for line in lines:
            args += [line.limit, len(line.window.buckets), int(self.hold_ttl_s * 2) + 60]
        return args

    async def _reserve_once(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires: float, now: float, write: bool
    ) -> list[str] | Down:
        args = self._reserve_args(lines, hold_id, amount, expires, now, write)
        return await self._attempt(self._reserve, [EPOCH, *_line_keys(lines)], args)

    async def _reserve_reply(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires: float, now: float, write: bool
    ) -> list[str] | Down:
        reply = await self._reserve_once(lines, hold_id, amount, expires, now, write)
        if not isinstance(reply, Down):
            self._saw_epoch(reply[1])
            if self._lost:  # judged against a Redis that lost its data: again, once the floors are back
                reply = await self._reserve_once(lines, hold_id, amount, expires, now, write)
        return reply

    async def reserve(
        self, lines: Sequence[Counted], hold_id: str, amount: int, expires_at: float, now: float
    ) -> Reserved:
        reply = await self._reserve_reply(lines, hold_id, amount, expires_at, now, True)
        if isinstance(reply, Down):
            return self.local.reserve_now(lines, hold_id, amount, expires_at, now)
        refused = int(reply[0])
        if refused < 0:
            self._in_redis.add(hold_id)
        return Reserved(self._standings(lines, reply, now), None if refused < 0 else refused)

    async def read(self, lines: Sequence[Counted], now: float) -> list[Standing]:
        reply = await self._reserve_reply(lines, "", 0, 0, now, False)
        if isinstance(reply, Down):
            return [self.local.standing(line, now) for line in lines]
        return self._standings(lines, reply, now)

    async def _settled(self, redis: Any, lines: Sequence[Counted], hold_id: str, amount: int) -> list[str]:
        keys = [EPOCH, *_line_keys(lines), LINES]
        args: list[Any] = [uuid.uuid4().hex, hold_id, amount, len(lines)]
        for line in lines:
            args += [line.line_id, len(line.window.buckets), line.window.ttl_s]
        reply: list[str] = await self._settle(keys=keys, args=args, client=redis)
        return reply

    async def _release(self, lines: Sequence[Counted], hold_id: str) -> list[str] | Down:
        return await self.link.attempt(lambda r: self._settled(r, lines, hold_id, 0))

    async def settle(self, lines: Sequence[Counted], hold_id: str, actual: int) -> list[Change]:
        if hold_id not in self._in_redis:
            return self.local.settle_now(lines, hold_id, actual)
        self._in_redis.discard(hold_id)
        return await self._spend(list(lines), hold_id, actual)

    async def charge(self, lines: Sequence[Counted], amount: int) -> list[Change]:
        return await self._spend(list(lines), "", amount)

    async def _spend(self, lines: list[Counted], hold_id: str, amount: int) -> list[Change]:
        reply: list[str] | Down = Down()
        if not self.link.healthy or await self._synced():
            reply = await self.link.attempt(lambda r: self._settled(r, lines, hold_id, amount))
        if isinstance(reply, Down):
            if hold_id:
                self._releases.append((lines, hold_id))
            return self.local.charge_now(lines, amount)
        self._saw_epoch(reply[0])
        changes = []
        for index, line in enumerate(lines):
            before, after = int(reply[1 + 2 * index]), int(reply[2 + 2 * index])
            key = (line.line_id, line.window.current)
            # The reply has the window's total: the current bucket's is what the others leave of it.
            others = sum(self._seen.get((line.line_id, b), 0) for b in line.window.buckets if b != key[1])
            self._seen[key] = max(self._seen.get(key, 0) + amount, after - others)
            self._lifetimes[key] = line.window.ttl_s
            changes.append(Change(before, after))
        return changes

    async def known_lines(self) -> list[str]:
        members = await self.link.attempt(lambda r: r.smembers(LINES))
        local = await self.local.known_lines()
        if isinstance(members, Down):
            return local
        return sorted({str(member) for member in members} | set(local))
