"""The server's lifespan keeps what startup built out of the collector's walks while it serves
(``wiring.gc_tuning``), and gives it back at shutdown."""

from __future__ import annotations

import gc

from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.provider_double import ProviderDouble
from wiring import gc_tuning


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


async def test_a_serving_app_has_its_startup_heap_frozen_and_released_at_shutdown(
    make_app: AppFactory, double: ProviderDouble
) -> None:
    app = make_app(settings_for(double))
    monitoring = app.state.monitoring  # built at startup, alive until shutdown

    async with app.router.lifespan_context(app):
        assert not _tracked(monitoring)
        assert gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD

    assert _tracked(monitoring)
    assert gc.get_freeze_count() == 0
