"""The serving state is frozen out of the cyclic GC (serving/heap.py): after the service loads it and after a reload
swaps it, its objects are in the permanent generation (gen-2 collections on the request path skip them); a state
replaced by a reload is unfrozen and its cycles collected at the next freeze; ``serving.gc_freeze=false`` leaves
the GC alone."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator

import pytest

from serving.heap import freeze_loaded
from serving.schemas import RankRequest
from serving.service import RankingService
from shoprank.settings import get_settings

from .conftest import ServingWorld


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """Every test starts and ends with nothing frozen (the permanent generation is process-wide)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def _collectable(obj: object) -> bool:
    """Is ``obj`` in one of the generations the cyclic GC walks (not frozen)?"""
    return any(o is obj for o in gc.get_objects())


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC frees it


def test_freeze_loaded_freezes_what_is_alive_and_frees_cycles_it_froze_before() -> None:
    kept, dropped = _Node(), _Node()
    dropped_ref = weakref.ref(dropped)
    assert _collectable(kept)
    assert freeze_loaded() > 0 and gc.get_freeze_count() > 0
    assert not _collectable(kept) and dropped_ref() is not None
    del dropped  # a replaced state: only its cycle keeps it alive, and it is frozen
    gc.collect()
    assert dropped_ref() is not None  # a collection skips frozen objects
    freeze_loaded()
    assert dropped_ref() is None  # the next freeze unfroze and collected it first
    assert not _collectable(kept)


def test_the_service_state_is_frozen_after_load_and_after_reload(serving_world: ServingWorld) -> None:
    service = RankingService()
    state = service.state
    assert gc.get_freeze_count() > 0
    assert not _collectable(state) and not _collectable(state.items) and not _collectable(state.retrieval)
    reloaded = service.reload()
    assert reloaded.reloaded and service.state is not state
    assert not _collectable(service.state) and not _collectable(service.state.items)
    response = service.rank(RankRequest(user_id=serving_world.user_ids[0], k=10))  # serves as before
    assert len(response.items) == 10 and not response.degraded


def test_gc_freeze_off_leaves_the_state_collectable(
    serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "SHOPRANK_SERVING__GC_FREEZE", "false")
    get_settings.cache_clear()
    try:
        service = RankingService()
    finally:
        monkeypatch.delitem(os.environ, "SHOPRANK_SERVING__GC_FREEZE")
        get_settings.cache_clear()
    assert gc.get_freeze_count() == 0 and _collectable(service.state.items)
