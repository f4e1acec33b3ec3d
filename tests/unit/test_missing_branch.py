"""A booster specialised for a feature that is always missing (shoprank/missing_branch.py): the same scores, bit
for bit, on rows where the feature is NaN, from trees with fewer nodes; the pre-ranker scores a feed with it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shoprank import prerank
from shoprank.missing_branch import fix_missing
from shoprank.prerank import PreRanker


def _trees(booster) -> list[dict]:  # noqa: ANN001
    return json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]


def _nodes(booster) -> int:  # noqa: ANN001
    return sum(int(tree["tree_param"]["num_nodes"]) for tree in _trees(booster))


@pytest.fixture(scope="module")
def ranker():  # noqa: ANN201
    """A LambdaMART where column 3 (NaN on half the rows, as the query match on the feed) decides the most: many
    trees split on it, at the root too."""
    from xgboost import XGBRanker

    rng = np.random.default_rng(7)
    n = 4000
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[rng.random(n) < 0.5, 3] = np.nan
    x[rng.random((n, 6)) < 0.05] = np.nan  # missing values elsewhere too
    signal = 2 * np.nan_to_num(x[:, 3]) + x[:, 0] + rng.normal(scale=0.5, size=n)
    y = np.digitize(signal, [0.5, 2.0])
    model = XGBRanker(n_estimators=30, max_depth=4, n_jobs=1, random_state=0)
    return model.fit(x, y, qid=np.repeat(np.arange(n // 40), 40)).get_booster()


def test_rows_without_the_feature_get_the_same_scores_from_fewer_nodes(ranker) -> None:  # noqa: ANN001
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(3000, 6)).astype(np.float32)
    rows[rng.random((3000, 6)) < 0.05] = np.nan
    rows[:, 3] = np.nan
    assert any(tree["split_indices"][0] == 3 for tree in _trees(ranker))  # a root split on it is cut too
    specialised = fix_missing(ranker, [3])
    assert np.array_equal(specialised.inplace_predict(rows), ranker.inplace_predict(rows))
    assert _nodes(specialised) < _nodes(ranker)
    assert not any(_splits_on(tree, 3) for tree in _trees(specialised))
    # rows that have the feature are no longer scored by it: the specialised model is for NaN rows only
    rows[:, 3] = rng.normal(size=3000)
    assert not np.array_equal(specialised.inplace_predict(rows), ranker.inplace_predict(rows))


def _splits_on(tree: dict, feature: int) -> bool:
    pairs = zip(tree["left_children"], tree["split_indices"], strict=True)
    return any(left != -1 and split == feature for left, split in pairs)


def test_a_feature_no_tree_splits_on_leaves_the_trees_as_they_are(ranker) -> None:  # noqa: ANN001
    unused = fix_missing(ranker, [99])
    for before, after in zip(_trees(ranker), _trees(unused), strict=True):
        for name in ("left_children", "right_children", "split_indices", "split_conditions", "default_left"):
            assert before[name] == after[name]


def test_the_preranker_scores_rows_without_a_query_with_the_query_free_trees() -> None:
    from xgboost import XGBRanker

    rng = np.random.default_rng(2)
    n, match = 3000, prerank.FEATURES.index(prerank.QUERY_MATCH)
    x = rng.normal(size=(n, len(prerank.FEATURES))).astype(np.float32)
    x[rng.random(n) < 0.5, match] = np.nan
    y = (np.nan_to_num(x[:, match]) + 0.3 * x[:, 0] > 0.5).astype(int)
    booster = XGBRanker(n_estimators=15, max_depth=4, n_jobs=1).fit(x, y, qid=np.arange(n) // 30).get_booster()
    model = PreRanker(version="t", booster=booster, card={"features": prerank.FEATURES})
    assert model.no_query_booster is not None and _nodes(model.no_query_booster) < _nodes(booster)
    feed = x.copy()
    feed[:, match] = np.nan
    assert np.array_equal(model.score(feed, query=False), model.score(feed))
    assert model.score(feed, query=False).dtype == np.float32
