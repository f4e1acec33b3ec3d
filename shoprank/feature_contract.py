"""The feature contract: every stored feature, feature view and ranker version, declared once.

Everything else is derived from these declarations: the Feast entities' views, sources and feature services
(feature_repo/), the offline sources' mart files (one parquet per view, exported by dbt), each ranker version's
model columns in order (training writes them to the model card; serving assembles exactly them), the marts the
warehouse exports, and the list of columns a test checks against each dbt mart.

Adding a feature view: write its dbt mart (SQL + YAML), declare it in :data:`VIEWS`, and name it in a ranker's
``columns`` (see docs/architecture.md). dbt stays SQL: tests/unit/test_feature_contract.py checks its columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shoprank import session

DType = Literal["int64", "float64", "string"]
Side = Literal["user", "item", "seller", "user_category"]

# Entity name -> its join key. A user x category view is keyed on both; a candidate joins it on its category.
ENTITY_KEYS = {"user": "user_id", "item": "item_id", "seller": "seller_id", "category": "category_id"}
CATEGORY_KEY = ENTITY_KEYS["category"]
OWNER = "ranking@shoprank.dev"


@dataclass(frozen=True)
class Feature:
    """One stored column of a view. ``model=False``: stored and served (e.g. a join key to another view, or an
    input of a derived feature) but not a model column."""

    name: str
    dtype: DType
    model: bool = True


@dataclass(frozen=True)
class View:
    """One feature view = one dbt mart (``<name>.parquet``, stamped ``feature_ts``) = one online read."""

    name: str
    entities: tuple[str, ...]
    features: tuple[Feature, ...]
    description: str
    ttl_days: int = 30
    # "mart": a dbt mart exported as parquet, materialized into the online store; "push": written to the online
    # store by the stream worker (a Feast PushSource), never materialized, computed offline by training.
    source: Literal["mart", "push"] = "mart"

    @property
    def mart(self) -> str:
        return self.name

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(ENTITY_KEYS[e] for e in self.entities)

    @property
    def model_columns(self) -> list[str]:
        return [f.name for f in self.features if f.model]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class Computed:
    """Columns computed from other columns at training and request time alike (no view stores them).

    ``on_demand`` groups are also a Feast on-demand view (shoprank.ranking_features.request_time_features).
    """

    name: str
    columns: tuple[str, ...]
    description: str
    on_demand: bool = False


@dataclass(frozen=True)
class Ranker:
    """A ranker version = one Feast feature service. ``columns`` names views and computed groups in model-column
    order; the service reads the views (and on-demand groups) named there."""

    name: str
    columns: tuple[str, ...]
    description: str


def category_share_columns(n_categories: int) -> list[str]:
    """The user's share of recent clicks per category: user_cat_share_00, user_cat_share_01, ..."""
    return [f"user_cat_share_{c:02d}" for c in range(n_categories)]


def _user_features(n_categories: int) -> View:
    return View(
        name="user_features",
        entities=("user",),
        features=(
            Feature("user_impressions_30d", "int64"),
            Feature("user_clicks_30d", "int64"),
            Feature("user_purchases_30d", "int64"),
            Feature("user_ctr_30d", "float64"),
            Feature("user_avg_click_price_30d", "float64"),
            Feature("user_is_cold_start", "int64"),
            # The shares enter the model only through user_category_affinity (a derived column).
            *(Feature(name, "float64", model=False) for name in category_share_columns(n_categories)),
        ),
        description="Long-term (30 day) user activity and category interests.",
    )


_ITEM_FEATURES = View(
    name="item_features",
    entities=("item",),
    features=(
        Feature("item_type_code", "int64"),
        Feature("item_category_id", "int64"),
        Feature("item_seller_id", "string", model=False),  # joins the seller view
        Feature("item_price", "float64"),
        Feature("item_stock_units", "float64"),
        Feature("item_age_days", "float64"),
        Feature("item_impressions_7d", "int64"),
        Feature("item_clicks_7d", "int64"),
        Feature("item_purchases_7d", "int64"),
        Feature("item_ctr_7d", "float64"),
        Feature("item_cvr_7d", "float64"),
        Feature("item_is_new", "int64"),
    ),
    description="Item catalogue attributes, stock, and smoothed 7-day engagement.",
)

_SELLER_FEATURES = View(
    name="seller_features",
    entities=("seller",),
    features=(
        Feature("seller_age_days", "float64"),
        Feature("seller_is_new", "int64"),
        Feature("seller_items", "int64"),
        Feature("seller_impressions_7d", "int64", model=False),
        Feature("seller_ctr_7d", "float64"),
        Feature("seller_cvr_7d", "float64"),
    ),
    description="Seller age, catalogue size and smoothed 7-day engagement of the seller's items.",
)

_ITEM_WINDOW_FEATURES = View(
    name="item_window_features",
    entities=("item",),
    features=(
        # The 7-day counts are item_features' (same definition): a view may not repeat another's feature names.
        *(
            Feature(f"item_{kind}_{days}d", "int64")
            for days in (1, 7, 30)
            for kind in ("impressions", "clicks", "purchases", "units_sold")
            if not (days == 7 and kind != "units_sold")
        ),
        *(Feature(f"item_{rate}_{days}d_cat", "float64") for days in (1, 7, 30) for rate in ("ctr", "cvr")),
        Feature("item_popularity_trend", "float64"),
        Feature("item_days_of_cover", "float64"),
    ),
    description="1/7/30-day item counts, CTR/CVR smoothed toward the category prior, popularity trend, days of cover.",
)

_USER_WINDOW_FEATURES = View(
    name="user_window_features",
    entities=("user",),
    features=(
        Feature("user_impressions_1d", "int64"),
        Feature("user_clicks_1d", "int64"),
        Feature("user_purchases_1d", "int64"),
        Feature("user_ctr_1d", "float64"),
        Feature("user_purchase_rate_30d", "float64"),
        Feature("user_price_band", "int64"),
        Feature("user_days_since_active", "int64"),
        Feature("user_last_active_day_impressions", "int64"),
        Feature("user_last_active_day_clicks", "int64"),
    ),
    description="Yesterday's user activity, the last active day, the 30-day purchase rate and the price band.",
)

_USER_CATEGORY_FEATURES = View(
    name="user_category_features",
    entities=("user", "category"),
    features=(
        Feature("uc_impressions_30d", "int64"),
        Feature("uc_clicks_30d", "int64"),
        Feature("uc_purchases_30d", "int64"),
        Feature("uc_ctr_30d", "float64"),
        Feature("uc_click_share_30d", "float64"),
        # The user's long-term taste for the category: the posterior mean of their log click-rate ratio against the
        # population (shoprank/taste.py; shrunk toward the window's fitted prior). Stored and served (recall can
        # read it); a model column only once it pays on the holdout (docs/simulator.md, "The long-term taste").
        Feature("uc_taste_30d", "float64", model=False),
    ),
    description="The user's 30-day engagement with one item category and their long-term taste for it (a shrunk "
    "posterior); joined on the candidate's category.",
    # The mart is sparse (a pair without impressions in the window has no row, meaning zero): a one-day TTL makes
    # the point-in-time join see only the snapshot of the example's own day, never an older row of the pair.
    ttl_days=1,
)


def _user_session_features(n_categories: int) -> View:
    return View(
        name="user_session_features",
        entities=("user",),
        # The session's summary as of its newest event (shoprank/session.py's pushed columns), stored packed in one
        # string (session.pack_row: one online-store value per user and write); every model column is derived from
        # it at request time (the session_user and session_candidate groups), so none is a model column itself.
        features=(Feature(session.STORED_COLUMN, "string", model=False),),
        description="The user's current session (clicks, carts, recent items, per-category clicks), pushed per event.",
        ttl_days=1,
        source="push",
    )


def views(n_categories: int) -> dict[str, View]:
    """Every feature view, by name (the user view's category shares depend on the number of categories)."""
    declared = (
        _user_features(n_categories),
        _ITEM_FEATURES,
        _SELLER_FEATURES,
        _USER_WINDOW_FEATURES,
        _ITEM_WINDOW_FEATURES,
        _USER_CATEGORY_FEATURES,
        _user_session_features(n_categories),
    )
    return {view.name: view for view in declared}


COMPUTED = {
    group.name: group
    for group in (
        Computed(
            "derived",
            ("user_category_affinity", "price_to_user_avg"),
            "The user's click share of the candidate's category; item price over the user's average clicked price.",
        ),
        Computed(
            "user_item_match",
            ("price_to_user_band", "item_in_user_top_category"),
            "Item price against the user's usual price band; whether the item is in the user's top category.",
            on_demand=True,
        ),
        # A function of the request's query and the item's title, with no entity to key it on: training reads it per
        # impression from the query_item_match mart, serving computes it per request (NaN on the feed in both).
        Computed("query", ("query_title_match",), "Share of the search query's words found in the item's title."),
        # The query-item relevance model's P(grade >= 2), trained on human grades (shoprank/query_relevance.py): per
        # search impression in training from the version trained on labels before the impression's day, per search
        # request in serving from the newest version; NaN on the feed and without a version.
        Computed(
            "relevance",
            ("query_item_relevance",),
            "The human-judged relevance model's P(grade >= 2) of the search query and the item.",
        ),
        # From the user_session_features row and the request's time (shoprank/session.py), per request in serving and
        # per impression in training (training/session_dataset.py replays the raw events).
        Computed(
            "session_user",
            tuple(session.SESSION_USER_COLUMNS),
            "The user's current session at request time: counts, age, time since the last click, 5/30-minute windows.",
        ),
        Computed(
            "session_candidate",
            tuple(session.SESSION_CANDIDATE_COLUMNS),
            "The candidate against the session: clicks and click share of its category, time since a click in it, "
            "its recency rank among the clicked categories, most clicked or not, its impressions and CTR, "
            "the item clicked or shown without a click earlier in the session.",
        ),
        # From the same pushed row's newest search query and the catalogue's titles (shoprank/session.py), per
        # request in serving and per impression in training; NaN without a search in the active session.
        Computed(
            "session_query",
            tuple(session.SESSION_QUERY_COLUMNS),
            "The candidate against the session's last search query: the share of its words in the candidate's title, "
            "the candidate's category's share of the catalogue items matching the query best.",
        ),
    )
}

# ranker_v3's views: the base of v4 (session) and the search-relevance variant
V3_VIEWS = (
    "user_features",
    "item_features",
    "derived",
    "item_window_features",
    "user_window_features",
    "user_category_features",
    "query",
)

RANKERS = {
    ranker.name: ranker
    for ranker in (
        Ranker(
            "ranker_v1",
            ("user_features", "item_features", "derived"),
            "Features of the v1 XGBoost ranker: user and item daily snapshots.",
        ),
        Ranker(
            "ranker_v2",
            ("user_features", "item_features", "derived", "seller_features", "user_item_match"),
            "Features of the v2 ranker: v1 plus the seller view and on-demand user-item match features.",
        ),
        Ranker(
            "ranker_v3",
            V3_VIEWS,
            "Features of the v3 ranker: v1 plus the window marts (1/7/30-day item windows, short-term user activity, "
            "user x category engagement joined on the candidate's category) and the search query's title match.",
        ),
        Ranker(
            "ranker_v4",
            (*V3_VIEWS, "user_session_features", "session_user", "session_candidate"),
            "Features of the v4 ranker: v3 plus the user's current session (pushed per event) and the candidate "
            "against it (its category's share of the session's clicks, clicked or shown earlier in the session).",
        ),
        # ranker_v4 with the last search query's columns: measured against ranker_v4 on the same frame
        # (benchmarks/bench_session.py); README's session section has the figures.
        Ranker(
            "ranker_v4_query",
            (*V3_VIEWS, "user_session_features", "session_user", "session_candidate", "session_query"),
            "Features of ranker_v4 plus the session's last search query against the candidate (its words in the "
            "title, the category it names).",
        ),
        Ranker(
            "ranker_v3_relevance",
            (*V3_VIEWS, "relevance"),
            "Features of the v3 search-relevance variant: v3 plus query_item_relevance, the relevance model trained "
            "on human grades of (query, item) pairs (issue 19).",
        ),
    )
}


def ranker(name: str) -> Ranker:
    try:
        return RANKERS[name]
    except KeyError:
        raise KeyError(f"unknown feature service {name!r}; declared: {sorted(RANKERS)}") from None


def feature_columns_for(feature_service: str, n_categories: int) -> list[str]:
    """The model's columns, in order, for the ranker version (Feast feature service) it is trained with."""
    declared = views(n_categories)
    columns: list[str] = []
    for group in ranker(feature_service).columns:
        columns += declared[group].model_columns if group in declared else list(COMPUTED[group].columns)
    return columns


def service_views(feature_service: str) -> list[str]:
    """The feature views (stored, then on-demand) the ranker's Feast feature service reads."""
    groups = ranker(feature_service).columns
    return [g for g in groups if g not in COMPUTED] + [g for g in groups if g in COMPUTED and COMPUTED[g].on_demand]


def view_features(view: str, n_categories: int = 0) -> list[str]:
    """The model columns of one declared view (the category shares, which are not model columns, need no count)."""
    return views(n_categories)[view].model_columns


def exported_views() -> list[str]:
    """The marts Feast reads as offline sources (every declared view built by dbt)."""
    return [name for name, view in views(0).items() if view.source == "mart"]


def push_views() -> list[str]:
    """The views written to the online store by the stream worker (Feast push sources), not by dbt."""
    return [name for name, view in views(0).items() if view.source == "push"]
