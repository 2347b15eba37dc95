"""Tests of the flow process's start-up helpers that need no services."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from dataflows import runtime


def _pauses(generation: int) -> float:
    value = REGISTRY.get_sample_value(
        "fraudflow_gc_pause_seconds_count", {"generation": str(generation)}
    )
    return value or 0.0


@pytest.fixture
def settled() -> Iterator[None]:
    runtime.settle_heap()
    yield
    gc.unfreeze()
    gc.callbacks.remove(runtime._on_collection)


def test_settling_the_heap_freezes_what_start_up_built(settled: None) -> None:
    assert gc.get_freeze_count() > 1000


def test_objects_made_after_settling_are_still_collected(settled: None) -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle

    assert gc.collect() >= 1


def test_each_full_collection_is_observed_as_a_pause(settled: None) -> None:
    before = _pauses(2)

    gc.collect()
    gc.collect()

    assert _pauses(2) == before + 2


def test_settling_twice_registers_the_pause_hook_once(settled: None) -> None:
    runtime.settle_heap()

    assert gc.callbacks.count(runtime._on_collection) == 1


def _collected_ids() -> set[int]:
    """Ids of the objects the collector still walks (frozen ones excluded)."""
    return {id(obj) for obj in gc.get_objects()}


def test_survivors_of_a_full_collection_are_frozen(settled: None) -> None:
    class State:
        pass

    gc.collect()  # counts start from zero: no automatic full pass below
    state = [State() for _ in range(1000)]
    walked = _collected_ids()
    assert all(id(s) in walked for s in state)

    gc.collect()

    walked = _collected_ids()
    assert not any(id(s) in walked for s in state)


def test_young_collections_freeze_nothing(settled: None) -> None:
    gc.collect()
    survivors = [[] for _ in range(100)]

    gc.collect(0)

    walked = _collected_ids()
    assert all(id(s) in walked for s in survivors)


def test_frozen_state_is_freed_by_reference_counting(settled: None) -> None:
    state = [[] for _ in range(1000)]
    gc.collect()
    frozen = gc.get_freeze_count()

    del state

    # Other frozen objects may die meanwhile; none is created here.
    assert gc.get_freeze_count() <= frozen - 1000


def test_the_frozen_count_is_exported(settled: None) -> None:
    exported = REGISTRY.get_sample_value("fraudflow_gc_frozen_objects")

    assert exported == pytest.approx(gc.get_freeze_count(), rel=0.01)
