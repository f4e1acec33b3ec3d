"""The long-term category taste estimator (shoprank/taste.py): shrinkage toward the population prior, the direction of
the evidence, the fitted prior, and the digamma series the SQL mart shares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import digamma as exact_digamma

from shoprank.taste import MAX_SHAPE, MIN_SHAPE, category_taste, digamma, population_ctr, prior_shape


def test_digamma_series_is_close_to_the_exact_function() -> None:
    x = np.array([0.05, 0.25, 0.5, 1.0, 2.0, 5.0, 50.0, 500.0])
    error = np.abs(digamma(x) - exact_digamma(x))
    assert error[x >= 0.5].max() < 2e-3 and error[x >= 2].max() < 1e-4
    assert error.max() < 6e-3  # at the lowest prior shape (0.05)


def test_no_history_is_the_population_prior() -> None:
    shape = 0.5
    prior = category_taste(np.zeros(3), np.zeros(3), ctr=0.05, shape=shape)
    assert np.allclose(prior, digamma(shape) - np.log(shape))
    # E[log theta] under Gamma(shape, shape): digamma(shape) - log(shape), below log E[theta] = 0
    assert np.allclose(prior, exact_digamma(shape) - np.log(shape), atol=2e-3) and (prior < 0).all()


def test_evidence_moves_the_estimate_in_its_direction_and_in_proportion_to_its_amount() -> None:
    ctr, shape = 0.05, 0.5
    prior = float(category_taste(0, 0, ctr, shape))
    # clicked more than an average user would have (10 impressions: 0.5 expected clicks)
    liked = category_taste(np.array([1, 3]), np.array([10, 10]), ctr, shape)
    assert prior < liked[0] < liked[1]
    # shown a lot and never clicked: a dislike, firmer with more impressions
    ignored = category_taste(np.array([0, 0]), np.array([20, 200]), ctr, shape)
    assert ignored[1] < ignored[0] < prior
    # the same click rate on more impressions: further from the prior (toward log(rate / ctr) = log 2)
    same_rate = category_taste(np.array([1, 10, 1000]), np.array([10, 100, 10_000]), ctr, shape)
    assert same_rate[0] < same_rate[1] < same_rate[2]
    assert same_rate[2] == pytest.approx(np.log(2.0), abs=0.01)


def test_a_wider_prior_follows_the_evidence_more() -> None:
    clicks, impressions, ctr = np.array([3]), np.array([10]), 0.05
    narrow = category_taste(clicks, impressions, ctr, shape=50.0)  # everyone alike: stay near the population
    wide = category_taste(clicks, impressions, ctr, shape=0.3)
    assert abs(float(narrow[0])) < 0.1 < float(wide[0])


def test_prior_shape_recovers_the_dispersion_of_gamma_poisson_data() -> None:
    rng = np.random.default_rng(0)
    shape, ctr = 0.5, 0.05
    impressions = rng.integers(5, 200, 40_000)
    theta = rng.gamma(shape, 1 / shape, len(impressions))
    clicks = rng.poisson(theta * impressions * ctr)
    fitted_ctr = population_ctr(clicks, impressions, fallback=0.1)
    assert fitted_ctr == pytest.approx(ctr, rel=0.05)
    assert prior_shape(clicks, impressions, fitted_ctr) == pytest.approx(shape, rel=0.1)


def test_prior_shape_is_bounded_and_an_empty_window_falls_back() -> None:
    assert population_ctr(np.zeros(2), np.zeros(2), fallback=0.05) == 0.05
    assert prior_shape(np.zeros(2), np.zeros(2), 0.05) == MAX_SHAPE  # no evidence: everyone at the population
    # under-dispersed (clicks exactly as expected): no spread between users
    assert prior_shape(np.array([5, 5]), np.array([100, 100]), 0.05) == MAX_SHAPE
    # wildly over-dispersed: the lower bound
    clicks, impressions = np.r_[np.zeros(99), 10_000], np.full(100, 100)
    assert prior_shape(clicks, impressions, population_ctr(clicks, impressions, 0.05)) == MIN_SHAPE
