"""The popularity ranker as an experiment arm (``model_tag: popularity``): the same list for every user, the items'
clicks of the last 7 days (the service's fallback order), served as a model so the arm runs the model path (the
user's online read, the rules, the logs) and its answers are not degraded. A baseline to A/B a trained model against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import POPULARITY_FEATURE

POPULARITY = "popularity"  # the reserved model tag (like "champion")


class PopularityRanker:
    """Scores a model matrix of one column, the item's popularity (missing: 0, as the fallback index)."""

    def predict(self, matrix: Any) -> np.ndarray:
        return np.nan_to_num(np.asarray(matrix, dtype=float)[:, 0], nan=0.0)


def popularity_bundle(feature_service: str, n_categories: int) -> ModelBundle:
    """A bundle scoring by popularity, served with ``feature_service``'s reader (the champion's)."""
    columns = [POPULARITY_FEATURE]
    metadata = {"feature_service": feature_service, "feature_columns": columns, "n_categories": n_categories}
    return ModelBundle(PopularityRanker(), columns, tag=POPULARITY, metadata=metadata)
