"""Expectation suites over the marts, built in code (no GX project folder, no YAML).

Each suite is keyed by the mart it checks; :mod:`quality.validate` runs them. Keep expectations cheap and
about invariants the downstream steps rely on (keys, label domains, rate ranges), not about distributions (drift
has its own gate, :mod:`quality.drift`). With a :class:`MartContext` the suites also check freshness
(the newest snapshot is the run's day + 1) and row counts against raw; ``point_in_time_suite`` checks that no
snapshot counts events of its own day or later (no label leakage). :data:`DERIVED_MART_SUITES` check facts of a
relation derived from a mart in SQL (per user-item pair: clicks >= purchases in ``training_examples``). The suites
are evaluated in DuckDB (quality.sql_expectations): use expectations that module knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe

from quality.lineage import user_item_funnel_sql


class SuiteDraft:
    """Collects expectations, then builds the suite in one go.

    Adding expectations one by one to a suite already stored in a file context rewrites it on every call (~50 ms
    each); building it with all its expectations costs one write.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.expectations: list[gxe.Expectation] = []

    def add_expectation(self, expectation: gxe.Expectation) -> None:
        self.expectations.append(expectation)

    def build(self) -> gx.ExpectationSuite:
        return gx.ExpectationSuite(name=self.name, expectations=self.expectations)


@dataclass
class MartContext:
    """Facts from outside the marts that their suites compare against."""

    run_date: date
    raw_impressions: int  # impressions in the raw partitions up to the run's day

    @property
    def day_start(self) -> datetime:
        return datetime(self.run_date.year, self.run_date.month, self.run_date.day, tzinfo=UTC)

    @property
    def serving_snapshot(self) -> datetime:
        """The newest feature snapshot: the end of the run's day (what serving reads)."""
        return self.day_start + timedelta(days=1)


def _fresh(suite: SuiteDraft, ctx: MartContext | None) -> None:
    if ctx is not None:
        snapshot = ctx.serving_snapshot
        suite.add_expectation(
            gxe.ExpectColumnMaxToBeBetween(column="feature_ts", min_value=snapshot, max_value=snapshot)
        )


def training_examples_suite(ctx: MartContext | None = None) -> gx.ExpectationSuite:
    suite = SuiteDraft("marts.training_examples")
    for column in ("impression_id", "request_id", "user_id", "item_id", "event_ts", "position", "dt"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="impression_id"))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["request_id", "item_id"]))
    for column in ("label_click", "label_cart", "label_purchase"):
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[0, 1]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="relevance", value_set=[0, 1, 2, 3]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="position", min_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="surface", value_set=["feed", "search"]))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    if ctx is not None:
        # Every raw impression becomes exactly one example; the newest examples are the run's day.
        suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=ctx.raw_impressions))
        suite.add_expectation(
            gxe.ExpectColumnMaxToBeBetween(
                column="event_ts", min_value=ctx.day_start, max_value=ctx.serving_snapshot, strict_max=True
            )
        )
    return suite.build()


def item_features_suite(ctx: MartContext | None = None) -> gx.ExpectationSuite:
    suite = SuiteDraft("marts.item_features")
    for column in ("item_id", "feature_ts", "item_price", "item_ctr_7d", "item_cvr_7d", "dt"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["item_id", "feature_ts"]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_ctr_7d", min_value=0, max_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_cvr_7d", min_value=0, max_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_price", min_value=0, strict_min=True))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_stock_units", min_value=0))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_age_days", min_value=0))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_type_code", value_set=[0, 1, 2]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_is_new", value_set=[0, 1]))
    for column in ("item_impressions_7d", "item_clicks_7d", "item_purchases_7d"):
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="item_impressions_7d", column_B="item_clicks_7d", or_equal=True
        )
    )
    # A purchase follows a click (the raw funnel suite checks it per user and item): no CVR above one.
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="item_clicks_7d", column_B="item_purchases_7d", or_equal=True
        )
    )
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    _fresh(suite, ctx)
    return suite.build()


def user_features_suite(ctx: MartContext | None = None) -> gx.ExpectationSuite:
    suite = SuiteDraft("marts.user_features")
    for column in ("user_id", "feature_ts", "user_impressions_30d", "user_ctr_30d", "user_is_cold_start", "dt"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "feature_ts"]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="user_ctr_30d", min_value=0, max_value=1))
    for column in ("user_impressions_30d", "user_clicks_30d", "user_purchases_30d", "user_avg_click_price_30d"):
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="user_impressions_30d", column_B="user_clicks_30d", or_equal=True
        )
    )
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="user_clicks_30d", column_B="user_purchases_30d", or_equal=True
        )
    )
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="user_is_cold_start", value_set=[0, 1]))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    _fresh(suite, ctx)
    return suite.build()


def point_in_time_suite(ctx: MartContext | None = None) -> gx.ExpectationSuite:
    """Over one row per (mart, snapshot): impressions the snapshot counts vs raw impressions strictly before it.

    A snapshot that counts more impressions than happened before its timestamp has read its own day or later:
    features that leak the labels of the impressions they are joined to (a cheap, exact-direction proxy for the
    per-row check; see quality.validate.point_in_time_table).
    """
    suite = SuiteDraft("marts.point_in_time")
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="raw_impressions_before", column_B="feature_impressions", or_equal=True
        )
    )
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    return suite.build()


def user_item_funnel_suite() -> gx.ExpectationSuite:
    """Over :func:`quality.lineage.user_item_funnel_sql` (user-item pairs of ``training_examples`` with a
    purchase label in the run's partitions): a pair never has more purchases than clicks, which would inflate the
    CVR features."""
    suite = SuiteDraft("marts.user_item_funnel")
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="clicks", column_B="purchases", or_equal=True)
    )
    return suite.build()


# derived table -> (its SQL relation from the marts' relations by name, suite factory): validated next to the marts.
# "training_examples" holds the run's partitions, "training_examples__all" every partition (history a check needs).
DERIVED_MART_SUITES: dict[str, tuple[Callable[[dict[str, str]], str], Callable[[], gx.ExpectationSuite]]] = {
    "user_item_funnel": (
        lambda marts: user_item_funnel_sql(marts["training_examples"], marts["training_examples__all"]),
        user_item_funnel_suite,
    ),
}

# mart name -> suite factory (fresh objects per run: a suite belongs to one GX context)
MART_SUITES: dict[str, Callable[..., gx.ExpectationSuite]] = {
    "training_examples": training_examples_suite,
    "item_features": item_features_suite,
    "user_features": user_features_suite,
}
