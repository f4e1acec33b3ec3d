"""XGBoost LambdaMART on Dask: the `cluster` profile's trainer when one machine's memory is not enough.

Same objective and hyperparameters as the local ranker (training.train), fitted with ``xgboost.dask`` on whatever
Dask cluster the client points at: a LocalCluster in tests, a Kubernetes or YARN cluster in production. The
result is a plain Booster, saved and served exactly like a locally trained one.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_ranker_on_dask(
    client: Any,
    features: np.ndarray,
    relevance: np.ndarray,
    group_ids: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    partitions: int = 2,
) -> Any:
    """Fit a ranker on ``client``'s cluster; rows must be sorted by ``group_ids`` (one request per group).

    Partitions are cut on group boundaries, so no request is split across workers.
    """
    import dask.array as da
    from xgboost import dask as dxgb

    if np.any(np.diff(group_ids) < 0):
        raise ValueError("rows must be sorted by group id")
    boundaries = np.flatnonzero(np.diff(group_ids)) + 1
    cuts = [int(boundaries[len(boundaries) * i // partitions]) for i in range(1, partitions) if len(boundaries)]
    chunks = tuple(np.diff([0, *cuts, len(group_ids)]).tolist())
    dtrain = dxgb.DaskDMatrix(
        client,
        da.from_array(features, chunks=(chunks, features.shape[1])),
        da.from_array(relevance, chunks=(chunks,)),
        qid=da.from_array(group_ids, chunks=(chunks,)),
    )
    result = dxgb.train(client, params, dtrain, num_boost_round=num_boost_round)
    return result["booster"]
