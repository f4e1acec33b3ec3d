"""Expectation suites over the marts, built in code (no GX project folder, no YAML).

Each suite is keyed by the mart it checks; :mod:`shoprank.quality.validate` runs them. Keep expectations cheap and
about invariants the downstream steps rely on (keys, label domains, rate ranges), not about distributions.
"""

from __future__ import annotations

from collections.abc import Callable

import great_expectations as gx
import great_expectations.expectations as gxe


def training_examples_suite() -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name="marts.training_examples")
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
    return suite


def item_features_suite() -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name="marts.item_features")
    for column in ("item_id", "feature_ts", "item_price", "item_ctr_7d", "item_cvr_7d", "dt"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["item_id", "feature_ts"]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_ctr_7d", min_value=0, max_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_cvr_7d", min_value=0, max_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_price", min_value=0, strict_min=True))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_stock_units", min_value=0))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="item_age_days", min_value=0))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_type_code", value_set=[0, 1, 2]))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    return suite


# mart name -> suite factory (fresh objects per run: a suite belongs to one GX context)
MART_SUITES: dict[str, Callable[[], gx.ExpectationSuite]] = {
    "training_examples": training_examples_suite,
    "item_features": item_features_suite,
}
