"""How evenly exposure spreads over sellers or items: one definition for monitoring, replay and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def gini(counts: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when equal, towards 1 when one holder has all (0 when empty)."""
    values = np.sort(np.asarray(counts, dtype=float))
    if values.size == 0 or values.sum() <= 0:
        return 0.0
    ranks = np.arange(1, values.size + 1)
    return float((2 * np.sum(ranks * values) / (values.size * values.sum())) - (values.size + 1) / values.size)
