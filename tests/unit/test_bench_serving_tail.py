"""benchmarks/bench_serving_tail.py's per-request splits: timed parts add up per name, and a gen-2 collection during
a request shows as its ``gc2`` pause."""

from __future__ import annotations

import gc
import time

from benchmarks.bench_serving_tail import Splits


def test_timed_parts_add_up_per_name() -> None:
    splits = Splits()

    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    slow = splits.timed("rules", nap)
    assert slow(0.01) == 0.01 and slow(0.01) == 0.01  # the wrapped function's result
    assert splits.current["rules"] >= 20


def test_a_gen2_collection_is_recorded_as_its_pause() -> None:
    splits = Splits()
    gc.callbacks.append(splits.gc_callback)
    try:
        gc.collect(2)
    finally:
        gc.callbacks.remove(splits.gc_callback)
    assert splits.current.get("gc2", 0.0) > 0 and "gc0" not in splits.current
