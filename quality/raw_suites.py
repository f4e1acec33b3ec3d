"""Expectation suites for the raw data contract (shoprank/raw_contract.py), built in code for one day.

Each table's run-day partition gets two suites: ``raw.<table>.schema`` over the parquet's arrow schema (one row per
column, ``name:type``) and ``raw.<table>`` over its rows. Parameters that depend on the day (its bounds, the ids
known so far, the volume band) come in through :class:`RawDayContext`, computed by :mod:`quality.raw`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import great_expectations as gx
import great_expectations.expectations as gxe
import pyarrow as pa
from great_expectations.expectations.row_conditions import Column

from quality.lineage import IMMUTABLE
from quality.suites import SuiteDraft
from shoprank.raw_contract import EVENT_TYPES, ITEM_TYPES, SCHEMAS

SURFACES = ("feed", "search")
KEYS = {
    "events": ("event_id", "event_ts", "event_type", "user_id", "item_id", "request_id", "surface", "price"),
    "items": ("item_id", "item_type", "seller_id", "category_id", "price", "created_ts"),
    "sellers": ("seller_id", "created_ts"),
    "inventory": ("item_id", "snapshot_ts", "stock_units"),
    "users": ("user_id", "signup_ts"),
}
UNIQUE = {"events": "event_id", "items": "item_id", "sellers": "seller_id", "inventory": "item_id", "users": "user_id"}


@dataclass
class RawDayContext:
    """What a day's suites compare against: its bounds, the ids known up to it, and its expected volume."""

    day_start: datetime
    day_end: datetime  # exclusive
    now: datetime
    known_item_ids: list[str]
    known_user_ids: list[str]
    known_seller_ids: list[str]
    # Expected event count band from the recent days' median; None when there is no history yet.
    volume_band: tuple[int, int] | None


def contract_columns(table: str) -> list[str]:
    return [f"{field.name}:{field.type}" for field in SCHEMAS[table]]


def schema_signature(schema: pa.Schema) -> list[str]:
    """``name:type`` per column of a parquet file's arrow schema (the pandas index, if stored, is not a column)."""
    return [f"{field.name}:{field.type}" for field in schema if not field.name.startswith("__index_level_")]


def schema_suite(table: str) -> gx.ExpectationSuite:
    """Validated against a frame with one ``column`` row per parquet column: names and types match the contract."""
    expected = contract_columns(table)
    suite = SuiteDraft(f"raw.{table}.schema")
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="column", value_set=expected))
    suite.add_expectation(gxe.ExpectColumnDistinctValuesToContainSet(column="column", value_set=expected))
    return suite.build()


def _timestamp_within(column: str, low: datetime, high: datetime) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, strict_max=True)


def events_suite(ctx: RawDayContext) -> gx.ExpectationSuite:
    suite = SuiteDraft("raw.events")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=[f.name for f in SCHEMAS["events"]]))
    for column in KEYS["events"]:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="event_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="surface", value_set=list(SURFACES)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1))
    suite.add_expectation(
        gxe.ExpectColumnValuesToNotBeNull(column="position", row_condition=Column("event_type") == "impression")
    )
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="position", min_value=1))
    # Inside the run's day, and never after the validation's wall clock ("events from the future").
    suite.add_expectation(_timestamp_within("event_ts", ctx.day_start, ctx.day_end))
    suite.add_expectation(gxe.ExpectColumnMaxToBeBetween(column="event_ts", max_value=ctx.now))
    # Referential integrity: every event points at an item and a user known up to the run's day.
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_id", value_set=ctx.known_item_ids))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="user_id", value_set=ctx.known_user_ids))
    if ctx.volume_band is None:
        suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    else:
        low, high = ctx.volume_band
        suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=max(low, 1), max_value=high))
    return suite.build()


def items_suite(ctx: RawDayContext) -> gx.ExpectationSuite:
    suite = SuiteDraft("raw.items")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=[f.name for f in SCHEMAS["items"]]))
    for column in KEYS["items"]:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="item_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_type", value_set=list(ITEM_TYPES)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="category_id", min_value=0))
    # No seller_id referential check: the simulator gives initial items to sellers that join later in the window.
    # The first partition holds the initial catalogue (created before the window): only "not after the day".
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="created_ts", max_value=ctx.day_end, strict_max=True)
    )
    return suite.build()


def sellers_suite(ctx: RawDayContext) -> gx.ExpectationSuite:
    suite = SuiteDraft("raw.sellers")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=[f.name for f in SCHEMAS["sellers"]]))
    for column in KEYS["sellers"]:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="seller_id"))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="created_ts", max_value=ctx.day_end, strict_max=True)
    )
    return suite.build()


def inventory_suite(ctx: RawDayContext) -> gx.ExpectationSuite:
    suite = SuiteDraft("raw.inventory")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=[f.name for f in SCHEMAS["inventory"]]))
    for column in KEYS["inventory"]:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="item_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="stock_units", min_value=0))
    suite.add_expectation(_timestamp_within("snapshot_ts", ctx.day_start, ctx.day_end))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_id", value_set=ctx.known_item_ids))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    return suite.build()


def users_suite(ctx: RawDayContext) -> gx.ExpectationSuite:
    suite = SuiteDraft("raw.users")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=[f.name for f in SCHEMAS["users"]]))
    for column in KEYS["users"]:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="user_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="signup_ts", max_value=ctx.day_end, strict_max=True))
    return suite.build()


def changes_suite(table: str, max_price_change_ratio: float) -> gx.ExpectationSuite:
    """Over :func:`quality.lineage.catalogue_changes`: one row per entity the run day redefines."""
    suite = SuiteDraft(f"raw.{table}.changes")
    for column in IMMUTABLE[table]:
        suite.add_expectation(gxe.ExpectColumnPairValuesToBeEqual(column_A=column, column_B=f"previous_{column}"))
    if table == "items":
        ratio = max_price_change_ratio
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column="price_ratio", min_value=1 / ratio, max_value=ratio)
        )
    return suite.build()


def funnel_suite() -> gx.ExpectationSuite:
    """Over :func:`quality.lineage.purchase_funnel`: a purchase follows an impression and a click."""
    suite = SuiteDraft("raw.events.funnel")
    for column in ("impressions_before", "clicks_before"):
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=1))
    return suite.build()


def item_created_suite() -> gx.ExpectationSuite:
    """Over :func:`quality.lineage.item_first_events`: no event of an item before it was created."""
    suite = SuiteDraft("raw.events.item_created")
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="first_event_ts", column_B="created_ts", or_equal=True)
    )
    return suite.build()


RAW_SUITES = {
    "events": events_suite,
    "items": items_suite,
    "sellers": sellers_suite,
    "inventory": inventory_suite,
    "users": users_suite,
}
