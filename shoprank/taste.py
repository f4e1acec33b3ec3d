"""A user's long-term taste for an item category: the posterior of how much more (or less) than an average user
they click that category's items, given all their history in the window.

The model (Gamma-Poisson, empirical Bayes). A user's clicks in a category are Poisson with mean ``theta * expected``,
where ``expected = impressions * ctr`` are the clicks an average user would have made on what the user was shown
(``ctr``: the population's click-through rate over the same window) and ``theta`` is the user's click-rate ratio for
the category. ``theta`` has a Gamma(shape, shape) prior (mean 1: the population), its dispersion fitted by the
method of moments over every (user, category) pair of the window (:func:`prior_shape`). The estimate is the
posterior mean of ``log theta``::

    taste = digamma(shape + clicks) - log(shape + expected)

so a pair with no impressions sits at the population prior ``digamma(shape) - log(shape)``, and evidence moves it
in proportion to how much there is: 3 clicks on 10 impressions is a strong taste, 0 clicks on 200 a dislike.

Why these inputs (docs/simulator.md, "The long-term taste"): on the simulator, the exposure by item and position,
search queries' categories and carts add almost nothing to the clicks-vs-impressions evidence; the prior's
shrinkage is what the raw counts and shares lack.

The dbt mart user_category_features computes the same formula in SQL (``uc_taste_30d``, macros/taste.sql's
``digamma``); tests/data/test_category_taste.py pins both. Recall (shoprank/recall.py) can call
:func:`category_taste` on the mart's counts.
"""

from __future__ import annotations

import numpy as np

# Bounds of the fitted prior shape: an over-dispersed window (variance -> inf) or a near-Poisson one (variance -> 0).
MIN_SHAPE = 0.05
MAX_SHAPE = 100.0


def digamma(x: np.ndarray | float) -> np.ndarray:
    """The digamma function for x > 0, from its asymptotic series at x + 1 (|error| < 2e-3 at x = 0.5, < 1e-4 from
    x = 2): ``log(x + 1) - 1 / (2 (x + 1)) - 1 / (12 (x + 1)^2) - 1 / x``. The SQL macro is the same expression, so
    the mart and this function agree exactly (no digamma in DuckDB, PostgreSQL or Spark SQL)."""
    x = np.asarray(x, dtype=float)
    y = x + 1.0
    return np.log(y) - 1.0 / (2.0 * y) - 1.0 / (12.0 * y * y) - 1.0 / x


def population_ctr(clicks: np.ndarray, impressions: np.ndarray, fallback: float) -> float:
    """The window's click-through rate over every pair; ``fallback`` when the window has no impressions."""
    shown = float(np.sum(impressions))
    return float(np.sum(clicks)) / shown if shown > 0 else fallback


def prior_shape(clicks: np.ndarray, impressions: np.ndarray, ctr: float) -> float:
    """Method-of-moments shape of the Gamma(shape, shape) prior of the click-rate ratio over a window's pairs:
    ``Var(clicks) = expected + expected^2 / shape``, so ``1 / shape = sum((clicks - expected)^2 - expected) /
    sum(expected^2)``, bounded to [MIN_SHAPE, MAX_SHAPE] (MAX_SHAPE also when the window has no evidence)."""
    expected = np.asarray(impressions, dtype=float) * ctr
    denominator = float(np.sum(expected**2))
    if denominator <= 0:
        return MAX_SHAPE
    variance = float(np.sum((np.asarray(clicks, dtype=float) - expected) ** 2 - expected)) / denominator
    return float(min(max(1.0 / variance, MIN_SHAPE), MAX_SHAPE)) if variance > 0 else MAX_SHAPE


def category_taste(clicks: np.ndarray, impressions: np.ndarray, ctr: float, shape: float) -> np.ndarray:
    """Posterior mean of log(click-rate ratio) per (user, category) pair: ``digamma(shape + clicks) - log(shape +
    impressions * ctr)``. Zero counts give the population prior, digamma(shape) - log(shape)."""
    clicks = np.asarray(clicks, dtype=float)
    expected = np.asarray(impressions, dtype=float) * ctr
    return digamma(shape + clicks) - np.log(shape + expected)
