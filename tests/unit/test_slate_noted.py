"""The slate's reasons bookkeeping (serving/rules/slate.py noted): a rule's reason goes on exactly the moved items."""

from __future__ import annotations

import numpy as np
import pytest

from serving.rules.slate import make_slate, noted


def test_a_reason_is_appended_to_the_moved_items_only() -> None:
    rng = np.random.default_rng(4)
    reasons: tuple[tuple[str, ...], ...] = tuple(() if i % 3 else ("boost",) for i in range(500))
    for share in (0.0, 0.01, 0.5, 1.0):
        mask = rng.random(500) < share
        got = noted(reasons, mask, "stock")
        assert got == tuple((*r, "stock") if m else r for r, m in zip(reasons, mask, strict=True))
    assert noted(reasons, np.zeros(500, dtype=bool), "x") is reasons  # nothing moved: nothing rebuilt
    with pytest.raises(ValueError):
        noted(reasons, np.ones(499, dtype=bool), "x")


def test_the_slate_notes_a_rule_on_the_positions_it_names() -> None:
    slate = make_slate(["a", "b", "c", "d"], np.array([4.0, 3.0, 2.0, 1.0]))
    up = np.array([False, False, True, False])
    moved = slate.with_reasons([1, 3], "mix").with_scores(np.array([4.0, 3.0, 9.0, 1.0]), up, "up")
    assert moved.reasons == ((), ("mix",), ("up",), ("mix",))
    assert slate.reasons == ((), (), (), ())
