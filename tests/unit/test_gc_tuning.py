"""``wiring.gc_tuning``: the startup heap leaves the collector's generations, and comes back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from wiring import gc_tuning


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def settled_heap() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_settling_freezes_what_lives_and_raises_the_young_threshold_and_releasing_undoes_both(
    settled_heap: tuple[int, int, int],
) -> None:
    alive = Node()

    thresholds = gc_tuning.settled()

    assert thresholds == settled_heap
    assert not _tracked(alive), "frozen: no collection walks it"
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (max(gc_tuning.YOUNG_THRESHOLD, settled_heap[0]), *settled_heap[1:])

    gc_tuning.released(thresholds)

    assert _tracked(alive)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == settled_heap


def test_garbage_of_startup_is_collected_not_frozen(settled_heap: tuple[int, int, int]) -> None:
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage

    gc_tuning.settled()

    assert gone() is None
