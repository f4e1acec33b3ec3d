"""Feature fetch from the Feast online store, driven by the feature service the model was trained with.

The service's feature views are sorted by join keys when the reader is built:
- keyed on user_id: read for the request's user (the daily snapshots' views, and the session view the stream
  worker pushes per event: the same read);
- keyed on user_id + category_id (user x category): read in the SAME online call, one entity row per category, so
  every candidate finds its category's values (see :meth:`OnlineFeatureReader.user_features`);
- keyed on item_id, or on seller_id (joined through the item's seller): item-side, served from the in-process item
  cache (serving/item_cache.py), which the reader describes as :class:`~serving.item_cache.ItemView` s;
- on-demand views: computed in process from the other columns (serving/ranking.py, same logic as Feast's).
Any other view makes the service unservable, with an error naming it. Values missing from the store (unknown user,
not materialized) come back as None and become NaN.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from serving.item_cache import ItemView
from shoprank.ranking_features import CATEGORY_KEY
from shoprank.session import STORED_COLUMN, unpack_row

if TYPE_CHECKING:
    from feast import FeatureStore


class OnlineFeatureReader:
    def __init__(self, store: FeatureStore, feature_service: str, n_categories: int) -> None:
        from feast.errors import FeatureViewNotFoundException

        self.store = store
        self.feature_service = feature_service
        self.n_categories = n_categories
        service = store.get_feature_service(feature_service)
        self.user_refs: list[str] = []
        self.category_refs: list[str] = []
        self.item_refs: list[str] = []
        self.item_views: list[ItemView] = []
        self.on_demand_features: list[str] = []
        # Features of user views written per event (push sources: the session view) rather than daily snapshots.
        self.pushed_features: set[str] = set()
        for projection in service.feature_view_projections:
            names = [feature.name for feature in projection.features]
            try:
                view = store.get_feature_view(projection.name)
            except FeatureViewNotFoundException:
                store.get_on_demand_feature_view(projection.name)  # raises when it is neither
                self.on_demand_features += names
                continue
            keys = {column.name for column in view.entity_columns}
            refs = [f"{projection.name_to_use()}:{name}" for name in names]
            if keys == {"user_id"}:
                self.user_refs += refs
                if view.stream_source is not None:
                    self.pushed_features.update(names)
            elif keys == {"user_id", CATEGORY_KEY}:
                self.category_refs += refs
            elif keys in ({"item_id"}, {"seller_id"}):
                (key,) = keys
                if key == "item_id":
                    self.item_refs += refs
                numeric = [f.name for f in projection.features if "String" not in str(f.dtype)]
                path = getattr(view.batch_source, "path", None)
                if not path:
                    raise ValueError(f"feature view {projection.name} has no file source to build the item cache from")
                self.item_views.append(ItemView(projection.name, Path(path), key, tuple(numeric)))
            else:
                raise ValueError(
                    f"feature view {projection.name} has join keys {sorted(keys)}; serving reads views keyed on "
                    f"user_id, user_id + {CATEGORY_KEY}, item_id or seller_id"
                )

    # The readers a union reads for (union()); empty for a reader of one feature service.
    parts: tuple[OnlineFeatureReader, ...] = ()

    @classmethod
    def union(cls, readers: Sequence[OnlineFeatureReader]) -> OnlineFeatureReader:
        """One reader for several feature services (an interleaving arm's two models): every user and user x
        category feature of each, read in ONE online call on the first reader's store (:meth:`user_features`
        answers a superset of what each reader would). The reader itself when all are the same. Two views
        giving one feature name raise ValueError (the online response names features without their view)."""
        distinct = list({id(r): r for r in readers}.values())
        if len(distinct) == 1:
            return distinct[0]
        merged = copy.copy(distinct[0])
        merged.parts = tuple(distinct)
        merged.feature_service = "+".join(dict.fromkeys(r.feature_service for r in distinct))
        merged.n_categories = max(r.n_categories for r in distinct)
        merged.user_refs = list(dict.fromkeys(ref for r in distinct for ref in r.user_refs))
        merged.category_refs = list(dict.fromkeys(ref for r in distinct for ref in r.category_refs))
        merged.item_refs = list(dict.fromkeys(ref for r in distinct for ref in r.item_refs))
        merged.item_views = list({v.name: v for r in distinct for v in r.item_views}.values())
        merged.on_demand_features = list(dict.fromkeys(f for r in distinct for f in r.on_demand_features))
        merged.pushed_features = set().union(*(r.pushed_features for r in distinct))
        names = [ref.split(":", 1)[1] for ref in merged.user_refs + merged.category_refs]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"feature services {merged.feature_service} both name {clashes} from different views")
        return merged

    @property
    def user_feature_names(self) -> list[str]:
        return [ref.split(":", 1)[1] for ref in self.user_refs]

    @property
    def category_feature_names(self) -> list[str]:
        return [ref.split(":", 1)[1] for ref in self.category_refs]

    def user_features(self, user_id: str) -> dict[str, Any]:
        """The user's stored features in ONE online read: {name: value} for the user views, and for the user x
        category views {name: tuple of n_categories values, indexed by category_id}.

        A user x category row older than the user's own snapshot is stale (the pair had no impressions in the
        newest window, so the mart has no row for it while the online store keeps the old one): it reads as None,
        as the point-in-time join (one-day TTL) sees it in training.
        """
        from feast.type_map import feast_value_type_to_python_type as python_value

        refs = self.user_refs + self.category_refs
        if not refs:
            return {}
        if self.category_refs:
            rows = [{"user_id": user_id, CATEGORY_KEY: c} for c in range(self.n_categories)]
        else:
            rows = [{"user_id": user_id}]
        # Read the response's protobuf directly, and only the cells used: the user views' values come back once per
        # entity row (n_categories copies), and converting them all (OnlineResponse.to_dict) costs more than the read.
        proto = self.store.get_online_features(features=refs, entity_rows=rows).proto
        results = dict(zip(proto.metadata.feature_names.val, proto.results, strict=True))
        out: dict[str, Any] = {name: python_value(results[name].values[0]) for name in self.user_feature_names}
        if STORED_COLUMN in self.pushed_features:  # the session row is stored packed: its columns, by name
            out.update(unpack_row(out.pop(STORED_COLUMN)))
        if self.category_refs:  # the snapshot's time: a pushed view's rows are stamped when an event arrived
            snapshot_names = [name for name in self.user_feature_names if name not in self.pushed_features]
            user_ts = max((results[name].event_timestamps[0].seconds for name in snapshot_names), default=0)
            for name in self.category_feature_names:
                vector = results[name]
                out[name] = tuple(
                    python_value(value) if stamp.seconds and stamp.seconds >= user_ts else None
                    for value, stamp in zip(vector.values, vector.event_timestamps, strict=True)
                )
        return out

    def item_features(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """One online read of the item-keyed views for ``item_ids`` (index ``item_id``); serving uses the item
        cache instead, this is the naive path `make bench-serving` compares with."""
        if not self.item_refs or not item_ids:
            return pd.DataFrame(index=pd.Index(list(item_ids), name="item_id"))
        rows = self.store.get_online_features(
            features=self.item_refs, entity_rows=[{"item_id": i} for i in item_ids]
        ).to_dict()
        return pd.DataFrame(rows).set_index("item_id")
