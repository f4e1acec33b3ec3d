"""Feature fetch from the Feast online store, driven by the feature service the model was trained with.

The service's feature views are split by entity: the user view is read once for the request's user, the item view
once for all candidates (one online read per view, as CONVENTIONS.md asks). Values missing from the store (unknown
user or item, not materialized) come back as None and become NaN in the feature frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from feast import FeatureStore


class OnlineFeatureReader:
    def __init__(self, store: FeatureStore, feature_service: str) -> None:
        self.store = store
        self.feature_service = feature_service
        service = store.get_feature_service(feature_service)
        self.user_refs: list[str] = []
        self.item_refs: list[str] = []
        for projection in service.feature_view_projections:
            view = store.get_feature_view(projection.name)
            keys = {column.name for column in view.entity_columns}
            refs = [f"{projection.name_to_use()}:{feature.name}" for feature in projection.features]
            if keys == {"user_id"}:
                self.user_refs += refs
            elif keys == {"item_id"}:
                self.item_refs += refs
            else:
                raise ValueError(
                    f"feature view {projection.name} has join keys {sorted(keys)}; "
                    "serving reads views keyed on user_id or item_id"
                )

    def user_features(self, user_id: str) -> dict[str, Any]:
        if not self.user_refs:
            return {}
        rows = self.store.get_online_features(features=self.user_refs, entity_rows=[{"user_id": user_id}]).to_dict()
        return {name: values[0] for name, values in rows.items() if name != "user_id"}

    def item_features(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """One row per item id (index ``item_id``), None/NaN where the store has nothing."""
        if not self.item_refs or not item_ids:
            return pd.DataFrame(index=pd.Index(list(item_ids), name="item_id"))
        rows = self.store.get_online_features(
            features=self.item_refs, entity_rows=[{"item_id": i} for i in item_ids]
        ).to_dict()
        return pd.DataFrame(rows).set_index("item_id")
