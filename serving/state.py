"""What the service serves with, loaded as one immutable bundle so a reload swaps it atomically.

:func:`load_state` builds a new bundle; on reload, a model that fails to load (corrupt, missing) or a feature
service the store does not know leaves the previous model, reader and rules in the new bundle, with the error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from serving.candidates import RetrievalIndex
from serving.events import load_user_ids
from serving.item_cache import ItemCache, ItemView
from serving.online_features import OnlineFeatureReader
from serving.ranking import servable_columns_missing
from serving.retrieval import PopularityIndex
from serving.rules.config import RulesConfig, load_rules
from shoprank.model_bundle import ModelBundle, load_champion
from shoprank.ranking_features import ITEM_FEATURES, QUERY_FEATURES
from shoprank.settings import Settings

log = logging.getLogger("shoprank.serving")


@dataclass(frozen=True)
class ServingState:
    champion: ModelBundle | None = None
    reader: OnlineFeatureReader | None = None
    items: ItemCache = field(default_factory=ItemCache.empty)
    popularity: PopularityIndex = field(default_factory=PopularityIndex)
    retrieval: RetrievalIndex = field(default_factory=RetrievalIndex)
    rules: RulesConfig | None = None
    # The users the published user_features mart knows (POST /events flags others).
    user_ids: frozenset[str] = frozenset()
    load_error: str | None = None
    errors: tuple[str, ...] = ()

    def n_categories(self, settings: Settings) -> int:
        return self.champion.n_categories if self.champion else settings.simulator.categories


def needs_titles(champion: ModelBundle | None) -> bool:
    """Whether the model scores with the request-time query match (which needs the items' titles)."""
    return champion is not None and bool(set(champion.feature_columns) & set(QUERY_FEATURES))


class UnservableModel(ValueError):
    """The model's feature columns are not all provided by its feature service."""


def check_servable(champion: ModelBundle, reader: OnlineFeatureReader) -> None:
    """Refuse a model whose card names a feature column the feature service cannot provide (stored in one of its
    views, or computed per request): it would score on NaN without anyone noticing."""
    item_columns = [*ITEM_FEATURES, *(f for view in reader.item_views for f in view.features)]
    missing = servable_columns_missing(
        champion.feature_columns, item_columns, reader.user_feature_names, reader.category_feature_names
    )
    if missing:
        raise UnservableModel(
            f"model {champion.tag} needs columns {missing} that feature service {reader.feature_service} "
            "does not provide"
        )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _one_thread(champion: ModelBundle) -> None:
    """Predict on one thread: requests already run in parallel, and OpenMP threads per 500-row predict contend for
    the cores (measured 2.5x slower on a 2-core box)."""
    for model in champion.models():
        set_params = getattr(model, "set_params", None)
        if callable(set_params):
            set_params(n_jobs=1)


def load_items(
    settings: Settings, new_seller_days: float, views: Sequence[ItemView] = (), titles: bool = False
) -> tuple[ItemCache, PopularityIndex, RetrievalIndex]:
    """The item cache (item_features plus the serving feature service's item-side ``views``; with ``titles``, the
    catalogue's titles from the raw items table, which no mart carries), popularity and retrieval.

    The marts pointer is resolved once, and every file of the load read from that published snapshot: a publish
    during the load cannot mix two snapshots. The views' paths (Feast's sources, through the pointer) follow it."""
    pointer = settings.marts_export_dir
    marts = pointer.resolve()
    views = [replace(view, path=marts / view.path.name) if view.path.parent == pointer else view for view in views]
    items = ItemCache.from_marts(marts, new_seller_days, views)
    if titles:
        items = items.with_titles(pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title"]))
    popularity = PopularityIndex.from_items(items)
    return items, popularity, RetrievalIndex.build(items, marts)


def reopen_reader(settings: Settings, reader: OnlineFeatureReader) -> OnlineFeatureReader:
    """The same feature service on a freshly opened feature store: a new online-store connection (an SQLite
    connection whose file was truncated or replaced keeps failing, even once the file is back)."""
    from shoprank.feature_store import get_feature_store

    return OnlineFeatureReader(get_feature_store(settings), reader.feature_service, reader.n_categories)


def load_state(settings: Settings, previous: ServingState | None = None) -> ServingState:
    """Load the champion, its feature reader, the rules, the item cache and the retrieval index.

    Without ``previous`` (start-up) a failed part is left empty and the service degrades; with it (reload) a
    failed part keeps the previous one.
    """
    errors: list[str] = []
    champion, reader, load_error = (previous.champion, previous.reader, None) if previous else (None, None, None)
    try:
        from shoprank.feature_store import get_feature_store

        new_champion = load_champion(settings)
        _one_thread(new_champion)
        champion, reader = new_champion, None
        new_reader = OnlineFeatureReader(
            get_feature_store(settings), new_champion.feature_service, new_champion.n_categories
        )
        check_servable(new_champion, new_reader)
        reader = new_reader
    except Exception as exc:
        load_error = _error(exc)
        errors.append(f"model: {load_error}")
        log.exception("model or feature store could not be loaded")
        if previous is not None:  # keep serving what served before
            champion, reader = previous.champion, previous.reader
        elif isinstance(exc, UnservableModel):
            champion = None
        elif champion is not None and reader is None:
            load_error = f"feature store: {load_error}"
    rules = previous.rules if previous else None
    try:
        rules = load_rules(settings.rules_file)
    except Exception as exc:
        errors.append(f"rules: {_error(exc)}")
        log.exception("rules file %s invalid; keeping the previous rules", settings.rules_file)
    new_seller_days = rules.exploration.new_seller_days if rules else 14.0
    try:
        items, popularity, retrieval = load_items(
            settings, new_seller_days, reader.item_views if reader else (), needs_titles(champion)
        )
    except Exception as exc:
        errors.append(f"items: {_error(exc)}")
        log.exception("item_features mart unreadable")
        if previous is not None:
            items, popularity, retrieval = previous.items, previous.popularity, previous.retrieval
        else:
            items, popularity, retrieval = ItemCache.empty(), PopularityIndex(), RetrievalIndex()
    try:
        user_ids = load_user_ids(settings.marts_export_dir)
    except Exception as exc:
        errors.append(f"users: {_error(exc)}")
        user_ids = previous.user_ids if previous is not None else frozenset()
    return ServingState(
        champion=champion,
        reader=reader,
        items=items,
        popularity=popularity,
        retrieval=retrieval,
        rules=rules,
        user_ids=user_ids,
        load_error=load_error,
        errors=tuple(errors),
    )
