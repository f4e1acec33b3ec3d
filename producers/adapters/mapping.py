"""The typed column mapping of :mod:`producers.adapters.interactions`: which input column means what.

A mapping is a pydantic model that refuses unknown keys, so a typo in ``mapping.yaml`` fails loudly. Either a
``rating`` rule (explicit feedback on any scale: thresholds turn a rating into funnel stages) or an ``event_type``
rule (implicit feedback: each input value maps to a funnel stage) says how a row becomes events.

Example (``mapping.yaml``)::

    user: visitorid
    item: itemid
    timestamp: {column: ts, unit: ms}
    event_type:
      column: event
      values: {view: impression, addtocart: add_to_cart, transaction: purchase}
    items: {category: categoryid, price: price}
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, model_validator

Stage = Literal["impression", "click", "add_to_cart", "purchase"]
STAGES: tuple[Stage, ...] = ("impression", "click", "add_to_cart", "purchase")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimestampColumn(_Strict):
    """When an interaction happened. Numbers are epoch times in ``unit``; strings are parsed with ``format``."""

    column: str = "timestamp"
    # Epoch unit of numeric values; None: the values are date-time strings (or already typed timestamps).
    unit: Literal["s", "ms", "us", "ns"] | None = "s"
    # strptime format of string values; None: ISO 8601.
    format: str | None = None
    # Zone of naive date-times (strings or parquet timestamps without a zone); the output is UTC.
    timezone: str = "UTC"
    # Plausible range: a wrong unit (ms read as s) lands far outside it and fails validation.
    earliest: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    latest: datetime | None = None  # None: now (nothing from the future)


class RatingRule(_Strict):
    """Explicit feedback: a rating >= ``click_at`` is a click, >= ``cart_at`` also an add-to-cart, >= ``purchase_at``
    also a purchase. Compared as floats on the input's own scale (3.5 >= 3.5 on a 0.5-5 scale; 7 on 1-10)."""

    column: str = "rating"
    click_at: float
    cart_at: float | None = None  # None: the same as purchase_at (an add-to-cart precedes every purchase)
    purchase_at: float | None = None  # None: no purchases
    scale: tuple[float, float] | None = None  # (min, max): ratings outside fail validation

    @model_validator(mode="after")
    def _ordered(self) -> RatingRule:
        cart = self.cart_at if self.cart_at is not None else self.purchase_at
        steps = [t for t in (self.click_at, cart, self.purchase_at) if t is not None]
        if steps != sorted(steps):
            raise ValueError(f"thresholds must satisfy click_at <= cart_at <= purchase_at, got {steps}")
        if self.scale is not None:
            low, high = self.scale
            if low > high or not all(low <= t <= high for t in steps):
                raise ValueError(f"thresholds {steps} must lie inside the scale {self.scale}")
        return self

    @property
    def effective_cart_at(self) -> float | None:
        return self.cart_at if self.cart_at is not None else self.purchase_at


class EventTypeRule(_Strict):
    """Implicit feedback: each input value maps to a funnel stage, or to ``ignore`` (dropped, counted)."""

    column: str = "event_type"
    values: dict[str, Stage | Literal["ignore"]]
    unmapped: Literal["error", "ignore"] = "error"  # values missing from ``values``


class CategoryMapping(_Strict):
    """Category labels (any strings or numbers) to dense ids ``0..n-1`` in ``labels`` order (None: sorted labels
    found in the data). Missing labels, and labels not in an explicit ``labels`` list, go to ``unknown_label``'s id
    (appended last unless it is one of the labels); ``on_unknown: error`` fails on unlisted labels instead."""

    labels: list[str] | None = None
    unknown_label: str = "unknown"
    on_unknown: Literal["unknown", "error"] = "unknown"


class ItemColumns(_Strict):
    """Optional item attributes: columns of the items table if one is given, else of the interactions table
    (then each item takes its last non-null value)."""

    id: str | None = None  # key column of the items table; None: the interactions' item column name
    category: str | None = None
    price: str | None = None  # > 0; missing prices take ``default_price``
    title: str | None = None  # missing titles take the item id
    seller: str | None = None  # missing sellers: one seller ``<seller prefix>unknown``
    item_type: str | None = None  # values in product / video / live; default product


class UserColumns(_Strict):
    """Optional user attributes, from the users table if one is given, else from the interactions table."""

    id: str | None = None  # key column of the users table; None: the interactions' user column name
    region: str | None = None
    age: str | None = None  # years, banded like the simulator (18-24 ... 55+)
    age_band: str | None = None  # labels used as they are


class InteractionMapping(_Strict):
    """How an interactions table maps onto the raw data contract (see the module docstring of interactions)."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: TimestampColumn = TimestampColumn()
    rating: RatingRule | None = None
    event_type: EventTypeRule | None = None
    items: ItemColumns = ItemColumns()
    users: UserColumns = UserColumns()
    category: CategoryMapping = CategoryMapping()
    # Rows identical in user, item, timestamp (and event type): dropped and counted, or an error.
    duplicates: Literal["drop", "error"] = "drop"
    # Ids become prefix + value; numeric values are zero-padded to id_width (6: user 1 -> u000001).
    user_prefix: str = "u"
    item_prefix: str = "i"
    seller_prefix: str = "s"
    id_width: int = Field(0, ge=0, le=20)
    default_price: float = Field(1.0, gt=0)
    default_region: str = "unknown"
    seller_tier: Literal["bronze", "silver", "gold"] = "gold"
    stock_units: int = Field(1000, ge=0)  # daily 00:00 snapshot: real logs rarely carry stock

    @model_validator(mode="after")
    def _one_feedback_rule(self) -> InteractionMapping:
        if (self.rating is None) == (self.event_type is None):
            raise ValueError("give exactly one of `rating` (explicit feedback) or `event_type` (implicit feedback)")
        return self


def load_mapping(path: Path | None = None, **overrides: object) -> InteractionMapping:
    """The mapping in YAML file ``path`` (if any) with ``overrides`` (top-level keys; None values ignored)."""
    data: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a mapping file holds a YAML mapping (key: value), got {type(loaded).__name__}")
        data = loaded or {}
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return InteractionMapping.model_validate(data)
