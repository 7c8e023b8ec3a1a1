"""The cyclic collector is made rare during a replay, and put back as it was after it."""

from __future__ import annotations

import gc

import pytest

from replay.engine.loop import GC_THRESHOLD, rare_collections


def test_rare_collections_raise_the_threshold_and_freeze_what_exists() -> None:
    before = gc.get_threshold()
    with rare_collections():
        assert gc.get_threshold()[0] == GC_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0  # the modules already loaded are left out
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made during the replay are still collected
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_rare_collections_restore_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), rare_collections():
        raise RuntimeError("a session failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
