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

On a SQLite online store (the ``local`` profile) the user's read goes straight to Feast's tables
(serving/online_sqlite.py: the same values and timestamps, without ``get_online_features``' per-call work); any
other online store is read through Feast.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from serving.item_cache import ItemView
from serving.online_sqlite import Columns, SqliteUserRead
from shoprank.ranking_features import CATEGORY_KEY
from shoprank.session import STORED_COLUMN, unpack_row

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView


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
        # the user / user x category views and their features read, for the direct SQLite read
        self.user_views: list[tuple[FeatureView, list[str]]] = []
        self.category_views: list[tuple[FeatureView, list[str]]] = []
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
                self.user_views.append((view, names))
                if view.stream_source is not None:
                    self.pushed_features.update(names)
            elif keys == {"user_id", CATEGORY_KEY}:
                self.category_refs += refs
                self.category_views.append((view, names))
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
        # None: read through Feast (not a SQLite online store)
        self.direct = SqliteUserRead.build(store, self.user_views, self.category_views, n_categories)

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
        merged.user_views = _merge_views(r.user_views for r in distinct)
        merged.category_views = _merge_views(r.category_views for r in distinct)
        names = [ref.split(":", 1)[1] for ref in merged.user_refs + merged.category_refs]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"feature services {merged.feature_service} both name {clashes} from different views")
        views = merged.user_views, merged.category_views
        merged.direct = SqliteUserRead.build(merged.store, *views, merged.n_categories)
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
        if not self.user_refs and not self.category_refs:
            return {}
        direct = self.direct
        columns = direct.read(user_id, self.n_categories) if direct is not None else self.feast_columns(user_id)
        out: dict[str, Any] = {name: columns[name][0][0] for name in self.user_feature_names}
        if STORED_COLUMN in self.pushed_features:  # the session row is stored packed: its columns, by name
            out.update(unpack_row(out.pop(STORED_COLUMN)))
        if self.category_refs:  # the snapshot's time: a pushed view's rows are stamped when an event arrived
            snapshot_names = [name for name in self.user_feature_names if name not in self.pushed_features]
            user_ts = max((columns[name][1][0] for name in snapshot_names), default=0)
            for name in self.category_feature_names:
                values, stamps = columns[name]
                out[name] = tuple(
                    value if stamp and stamp >= user_ts else None for value, stamp in zip(values, stamps, strict=True)
                )
        return out

    def feast_columns(self, user_id: str) -> Columns:
        """The user's read through ``FeatureStore.get_online_features``: per feature, each entity row's python value
        and event timestamp (seconds); the user views' values once (their first entity row)."""
        from feast.type_map import feast_value_type_to_python_type as python_value

        if self.category_refs:
            rows = [{"user_id": user_id, CATEGORY_KEY: c} for c in range(self.n_categories)]
        else:
            rows = [{"user_id": user_id}]
        # Read the response's protobuf directly, and only the cells used: the user views' values come back once per
        # entity row (n_categories copies), and converting them all (OnlineResponse.to_dict) costs more than the read.
        proto = self.store.get_online_features(features=self.user_refs + self.category_refs, entity_rows=rows).proto
        results = dict(zip(proto.metadata.feature_names.val, proto.results, strict=True))
        out: Columns = {}
        for name in self.user_feature_names:
            vector = results[name]
            out[name] = ([python_value(vector.values[0])], [vector.event_timestamps[0].seconds])
        for name in self.category_feature_names:
            vector = results[name]
            out[name] = ([python_value(v) for v in vector.values], [t.seconds for t in vector.event_timestamps])
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


def _merge_views(groups: Any) -> list[tuple[FeatureView, list[str]]]:
    """Views of several readers, one entry per view name, with every feature any of them reads."""
    merged: dict[str, tuple[FeatureView, list[str]]] = {}
    for views in groups:
        for view, names in views:
            _, known = merged.setdefault(view.name, (view, []))
            known.extend(n for n in names if n not in known)
    return list(merged.values())
