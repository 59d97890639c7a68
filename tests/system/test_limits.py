"""An overshoot owed through one replica is refused by the other: two apps sharing a real Redis.
(The other limits: ``tests/service/test_limits.py``.)"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.clock import FakeClock
from tests.helpers.keys import as_tier, keys_file, limited_tiers
from tests.helpers.limits import START, app_on, serving
from tests.helpers.provider_double import Behaviour, ProviderDouble
from wiring.shared_state import SharedState

QUESTION = {"question": "What is LangServe?"}


async def test_an_overshoot_owed_through_one_replica_is_refused_by_the_other(
    double: ProviderDouble, make_app: AppFactory, tmp_path: Path, redis_url: str
) -> None:
    clock = FakeClock(START)
    settings = settings_for(
        double, api_keys_file=keys_file(tmp_path), tiers=limited_tiers(tokens_per_minute=100), redis_url=redis_url
    )
    one, other = SharedState.from_settings(settings), SharedState.from_settings(settings)
    double.set("gpt-4o-mini", Behaviour(text="word " * 300))
    try:
        first_app, other_app = app_on(make_app, settings, clock, one), app_on(make_app, settings, clock, other)
        async with serving(first_app) as first, serving(other_app) as second:
            answered = await first.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
            await first_app.state.policy.meter.drain()
            clock.now += 60
            refused = await second.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
            clock.now += 60 * 4
            later = await second.post("/chat/invoke", json={"input": QUESTION}, headers=as_tier("pro"))
    finally:
        await one.close()
        await other.close()

    assert answered.status_code == 200
    assert refused.status_code == 429 and refused.json()["owed"] > 0
    assert int(refused.headers["retry-after"]) > 60, "three minutes' budgets owed"
    assert later.status_code == 200, "paid off"
