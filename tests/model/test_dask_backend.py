"""XGBoost ranking on a real Dask LocalCluster learns what the local trainer learns."""

from __future__ import annotations

import numpy as np
import pytest

from training.dask_backend import fit_ranker_on_dask


def _ranking_data(seed: int = 3, groups: int = 300, per_group: int = 10):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(groups * per_group, 4)).astype(np.float32)
    # Relevance follows the first feature; the others are noise.
    relevance = (features[:, 0] > 0.8).astype(int) + (features[:, 0] > 1.5).astype(int)
    group_ids = np.repeat(np.arange(groups), per_group)
    return features, relevance, group_ids


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_dask_ranker_orders_by_the_signal_feature(dask_client):
    import xgboost as xgb

    features, relevance, group_ids = _ranking_data()
    params = {"objective": "rank:ndcg", "tree_method": "hist", "max_depth": 3, "eta": 0.3}
    booster = fit_ranker_on_dask(dask_client, features, relevance, group_ids, params, num_boost_round=20)
    probe = np.zeros((2, 4), dtype=np.float32)
    probe[1, 0] = 2.0
    low, high = booster.predict(xgb.DMatrix(probe))
    assert high > low
    assert booster.num_boosted_rounds() == 20


def test_unsorted_groups_are_rejected(dask_client):
    features, relevance, group_ids = _ranking_data(groups=4)
    with pytest.raises(ValueError, match="sorted"):
        fit_ranker_on_dask(dask_client, features, relevance, group_ids[::-1].copy(), {}, num_boost_round=1)
