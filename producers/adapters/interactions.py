"""Any interactions table (CSV or parquet) onto the raw data contract: "bring your own interactions".

:func:`import_interactions` validates the input against an :class:`~producers.adapters.mapping.InteractionMapping`,
converts it into a staging folder and only then swaps the staged tables in for the home's raw tables, so a failed
import (bad input, a crash while writing) leaves the existing raw data untouched. The home holds one data set at a
time: the import replaces every raw table; rebuild the warehouse with ``full_refresh`` afterwards.

Rules (README.md "Data" summarises them)
----------------------------------------
- validation, before anything is written: the mapped columns exist; user, item and timestamp are never null;
  timestamps parse (epoch numbers in ``timestamp.unit``, or strings in ``timestamp.format`` / ISO 8601) and lie in
  ``[timestamp.earliest, timestamp.latest or now]``; ratings are numbers inside ``rating.scale``; every event-type
  value is mapped (or ``unmapped: ignore``); item and user tables have unique, non-null keys; prices are numbers
  > 0; item types are product / video / live; the categories fit ``settings.simulator.categories``. Every problem is
  reported at once, naming the column, the count and a sample of the bad values (:class:`ImportValidationError`).
- duplicates: rows equal in user, item, timestamp (and event type) are dropped and counted (``duplicates: error``
  fails instead). Re-ratings at other times are separate interactions.
- funnel: a rating reaches click at ``click_at``, add-to-cart at ``cart_at``, purchase at ``purchase_at``
  (floats, the input's own scale); an event-type row reaches its mapped stage (a purchase implies its impression,
  click and cart). Rows of one user, item and UTC day collapse into one interaction (a slate shows an item once)
  at the first row's time, reaching the furthest stage seen (counted as ``same_day_repeats_merged``); quantity =
  the number of purchase rows (1 for ratings). Each interaction is an impression; its later stages follow 1, 2 and
  3 s after it (clamped to stay inside the day).
- requests: a user's interactions of one UTC day, in time order, cut into slates of ``slate_size``; one ``feed``
  request per slate (``r<YYYYMMDD>-<user_id>-<slate:03d>``), positions 1..slate_size. A logged interaction is
  what the user chose, so the log is biased toward positives, like any implicit-feedback log.
- entities: users and items exist from one hour before their first interaction; a seller from its first item;
  categories: labels -> dense ids (:class:`~producers.adapters.mapping.CategoryMapping`), missing and unlisted
  labels -> the explicit ``unknown`` id (counted in the summary); inventory: a 00:00 snapshot of ``stock_units``
  per existing item and day.
- partitions: every table has one per day from its first to the last interaction day (entity tables may be empty).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from producers.adapters.mapping import STAGES, InteractionMapping
from shoprank.raw_contract import AGE_BANDS, ITEM_TYPES, SCHEMAS, TABLES, partition_path, write_partition
from shoprank.settings import Settings

DAY_US = 86_400 * 10**6
HOUR_US = 3_600 * 10**6
FUNNEL_LAST_OFFSET_US = 4 * 10**6  # stages follow 1-3 s after the impression and stay inside its day
MAX_CATEGORIES = 99  # settings.simulator.categories' bound (two-digit user_cat_share_NN columns)
AGE_BAND_UPPER = (24, 34, 44, 54)  # upper age of each band in simulator.AGE_BANDS but the last
IMPORT_FILE = "_import.json"


class ImportValidationError(ValueError):
    """The input cannot be mapped; ``problems`` lists each one (column, count, sample of bad values)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("cannot import the interactions:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV/TSV (every column as text, validated later) or parquet file or folder of parquet files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no input at {path}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=True)
    raise ValueError(f"{path}: unknown input format {suffix!r} (use .csv, .tsv, .parquet or a folder of parquet)")


def _sample(values: pd.Series, n: int = 5) -> str:
    shown = pd.Series(values).drop_duplicates().head(n).tolist()
    return f"{len(values)} row(s), e.g. {shown}"


def _ids(values: pd.Series, prefix: str, width: int) -> pd.Series:
    """prefix + value; numeric values (``7``, ``7.0``) zero-padded to ``width``."""
    text = values.astype(str).str.strip()
    text = text.where(~text.str.fullmatch(r"\d+\.0"), text.str[:-2])  # CSV/float ids: 7.0 -> 7
    if width:
        text = text.where(~text.str.fullmatch(r"\d+"), text.str.zfill(width))
    return prefix + text


def _codes(values: pd.Series, prefix: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(int code per row, id per code): ids are formatted once per distinct value, not once per row."""
    codes, uniques = pd.factorize(values)
    # 7 and "7.0" are one id; sorted, so code order is id order whatever the input's row order
    canonical, ids = pd.factorize(_ids(pd.Series(uniques), prefix, width), sort=True)
    return canonical[codes], np.asarray(ids, dtype=object)


def _parse_timestamps(values: pd.Series, mapping: InteractionMapping, problems: list[str]) -> pd.Series:
    """UTC epoch microseconds (int64); unparseable or out-of-range values become problems."""
    spec = mapping.timestamp
    column = f"{spec.column!r}"
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    elif spec.unit is not None:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        if len(bad):
            problems.append(f"timestamp column {column}: not a number (epoch {spec.unit}): {_sample(bad)}")
        parsed = pd.to_datetime(numbers, unit=spec.unit, errors="coerce")
    else:
        parsed = pd.to_datetime(values, format=spec.format or "ISO8601", errors="coerce", utc=False)
        bad = values[parsed.isna() & values.notna()]
        if len(bad):
            problems.append(
                f"timestamp column {column}: not a date-time in format {spec.format or 'ISO 8601'}: {_sample(bad)}"
            )
    if getattr(parsed.dtype, "tz", None) is None:
        parsed = parsed.dt.tz_localize(spec.timezone)
    parsed = parsed.dt.tz_convert("UTC")
    latest = spec.latest or datetime.now(UTC)
    outside = parsed.notna() & ((parsed < spec.earliest) | (parsed > latest))
    if outside.any():
        problems.append(
            f"timestamp column {column}: outside [{spec.earliest:%Y-%m-%d}, {latest:%Y-%m-%d %H:%M}] UTC (wrong unit "
            f"or zone?): {_sample(values[outside])} -> {parsed[outside].head(3).dt.strftime('%Y-%m-%d').tolist()}"
        )
    micros = parsed.astype("datetime64[us, UTC]").astype("int64")
    return micros.where(parsed.notna(), -1)


def _check_columns(table: str, frame: pd.DataFrame, wanted: Mapping[str, str | None]) -> list[str]:
    missing = [f"{role} -> {col!r}" for role, col in wanted.items() if col is not None and col not in frame.columns]
    if missing:
        return [f"{table}: missing column(s) {', '.join(missing)} (the table has {list(frame.columns)})"]
    return []


def _check_keys(table: str, frame: pd.DataFrame, key: str, unique: bool) -> list[str]:
    problems = []
    nulls = frame[key].isna()
    if nulls.any():
        problems.append(
            f"{table} column {key!r}: {int(nulls.sum())} null key(s), e.g. rows {list(frame.index[nulls][:5])}"
        )
    if unique:
        dup = frame[key][frame[key].notna() & frame[key].duplicated(keep=False)]
        if len(dup):
            problems.append(f"{table} column {key!r}: duplicate keys (one row per key): {_sample(dup)}")
    return problems


def _attributes(
    source: pd.DataFrame, key: str, columns: dict[str, str | None], from_interactions: bool
) -> pd.DataFrame:
    """One row per key with the mapped attribute columns (renamed to their role); interactions: last non-null."""
    picked = {role: col for role, col in columns.items() if col is not None}
    frame = source[[key, *dict.fromkeys(picked.values())]]
    frame = frame.groupby(key, sort=False).last() if from_interactions else frame.set_index(key)
    return pd.DataFrame({role: frame[col] for role, col in picked.items()}, index=frame.index)


@dataclass(frozen=True)
class Prepared:
    """Validated input: one row per interaction, and the entity tables (everything but partitioning)."""

    interactions: pd.DataFrame  # user, item (codes into user_ids / item_ids), ts (us), level (0..3), quantity
    user_ids: np.ndarray
    item_ids: np.ndarray
    items: pd.DataFrame  # item_id, item_type, seller_id, category_id, price, title, created (us)
    users: pd.DataFrame  # user_id, region, age_band, signup (us)
    categories: dict[str, int]
    unknown_category: int
    counts: dict[str, int]


def prepare(
    interactions: pd.DataFrame,
    mapping: InteractionMapping,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> Prepared:
    """Validate and normalise the input; raises :class:`ImportValidationError` listing every problem found."""
    feedback = mapping.rating.column if mapping.rating else mapping.event_type.column  # type: ignore[union-attr]
    item_cols = mapping.items.model_dump(exclude={"id"})
    user_cols = mapping.users.model_dump(exclude={"id"})
    item_key = mapping.items.id or mapping.item
    user_key = mapping.users.id or mapping.user
    wanted = {"user": mapping.user, "item": mapping.item, "timestamp": mapping.timestamp.column}
    wanted["rating" if mapping.rating else "event_type"] = feedback
    problems = _check_columns("interactions", interactions, wanted)
    if items is not None:
        problems += _check_columns("items", items, {"id": item_key, **item_cols})
    else:
        problems += _check_columns("interactions", interactions, item_cols)
    if users is not None:
        problems += _check_columns("users", users, {"id": user_key, **user_cols})
    else:
        problems += _check_columns("interactions", interactions, user_cols)
    if problems:
        raise ImportValidationError(problems)
    if len(interactions) == 0:
        raise ImportValidationError(["interactions: the table has no rows"])

    frame = interactions.reset_index(drop=True)
    for role in ("user", "item", "timestamp"):
        problems += _check_keys("interactions", frame, wanted[role], unique=False)
    ts = _parse_timestamps(frame[mapping.timestamp.column], mapping, problems)
    counts: dict[str, int] = {"input_rows": len(frame)}

    if mapping.rating is not None:
        rule = mapping.rating
        rating = pd.to_numeric(frame[rule.column], errors="coerce")
        bad = frame[rule.column][rating.isna()]
        if len(bad):
            problems.append(f"rating column {rule.column!r}: not a number: {_sample(bad)}")
        if rule.scale is not None:
            outside = rating.notna() & ~rating.between(*rule.scale)
            if outside.any():
                problems.append(
                    f"rating column {rule.column!r}: outside the scale {rule.scale}: {_sample(rating[outside])}"
                )
        stage = (rating >= rule.click_at).astype(np.int8)
        for threshold in (rule.effective_cart_at, rule.purchase_at):
            if threshold is not None:
                stage += (rating >= threshold).astype(np.int8)
        dup_keys = [mapping.user, mapping.item]
    else:
        rule_e = mapping.event_type
        assert rule_e is not None
        raw = frame[rule_e.column].astype("string").str.strip()
        stage_of = {
            value: (-1 if target == "ignore" else STAGES.index(target)) for value, target in rule_e.values.items()
        }
        mapped = raw.map(stage_of)
        unmapped = raw[mapped.isna()]
        if len(unmapped) and rule_e.unmapped == "error":
            found = unmapped.fillna("<null>").value_counts().head(10).to_dict()
            problems.append(
                f"event_type column {rule_e.column!r}: value(s) not in the mapping's `values` {sorted(rule_e.values)}: "
                f"{len(unmapped)} row(s), counts {found}"
            )
        stage = mapped.fillna(-1).astype(np.int8)
        dup_keys = [mapping.user, mapping.item, rule_e.column]

    item_table = items if items is not None else frame
    user_table = users if users is not None else frame
    if items is not None:
        problems += _check_keys("items", items, item_key, unique=True)
    if users is not None:
        problems += _check_keys("users", users, user_key, unique=True)
    if problems:
        raise ImportValidationError(problems)

    user_code, user_ids = _codes(frame[mapping.user], mapping.user_prefix, mapping.id_width)
    item_code, item_ids = _codes(frame[mapping.item], mapping.item_prefix, mapping.id_width)
    keys = pd.DataFrame({"user": user_code, "item": item_code, "ts": ts})
    if mapping.event_type is not None:
        keys["event"] = pd.factorize(frame[mapping.event_type.column])[0]
    dupes = keys.duplicated()
    if dupes.any() and mapping.duplicates == "error":
        cols = [*dup_keys, mapping.timestamp.column]
        sample = frame.loc[dupes, cols].head(3).to_dict("records")
        raise ImportValidationError([f"interactions: {int(dupes.sum())} duplicate row(s) on {cols}, e.g. {sample}"])
    counts["duplicates_dropped"] = int(dupes.sum())
    keep = (~dupes & (stage >= 0)).to_numpy()
    counts["events_ignored"] = int((~dupes & (stage < 0)).sum())
    inter = keys.drop(columns="event", errors="ignore").assign(level=stage, purchase=(stage == 3).astype(np.int64))
    inter = inter[keep]
    # One interaction per user, item and UTC day (a slate shows an item once): the first touch, furthest stage.
    inter["day"] = inter["ts"] // DAY_US
    before = len(inter)
    inter = (
        inter.groupby(["user", "item", "day"], sort=False)
        .agg(ts=("ts", "min"), level=("level", "max"), quantity=("purchase", "sum"))
        .reset_index()
        .drop(columns="day")
    )
    counts["same_day_repeats_merged"] = before - len(inter)
    if inter.empty:
        raise ImportValidationError(["interactions: no rows left after dropping ignored events and duplicates"])
    # quantity = purchase rows of the day (event types); a rating buys one
    inter["quantity"] = inter["quantity"].clip(lower=1, upper=None if mapping.event_type else 1)

    item_attrs = _attributes(item_table, item_key, item_cols, items is None)
    item_attrs.index = _ids(item_attrs.index.to_series(), mapping.item_prefix, mapping.id_width).to_numpy()
    user_attrs = _attributes(user_table, user_key, user_cols, users is None)
    user_attrs.index = _ids(user_attrs.index.to_series(), mapping.user_prefix, mapping.id_width).to_numpy()
    first_item = inter.groupby("item")["ts"].min()
    first_item.index = item_ids[first_item.index.to_numpy()]
    first_user = inter.groupby("user")["ts"].min()
    first_user.index = user_ids[first_user.index.to_numpy()]
    # Items and users without a row in their table keep default attributes (counted: a join on the wrong key
    # shows up as every item without attributes).
    counts["items_without_attributes"] = int((~first_item.index.isin(item_attrs.index)).sum())
    counts["users_without_attributes"] = int((~first_user.index.isin(user_attrs.index)).sum())
    item_attrs = item_attrs.reindex(first_item.index)
    user_attrs = user_attrs.reindex(first_user.index)

    item_frame, categories, unknown_id, cat_counts = _items(item_attrs, first_item, mapping, problems)
    counts.update(cat_counts)
    if len(categories) > max_categories:
        n = len(categories)
        problems.append(
            f"category column {mapping.items.category!r}: {n} categories, more than settings.simulator.categories="
            f"{max_categories} (set SHOPRANK_SIMULATOR__CATEGORIES={n}, at most {MAX_CATEGORIES}; or list fewer "
            "`category.labels`, the rest going to unknown)"
        )
    user_frame = _users(user_attrs, first_user, mapping, problems)
    if problems:
        raise ImportValidationError(problems)
    return Prepared(inter, user_ids, item_ids, item_frame, user_frame, categories, unknown_id, counts)


def _label_order(labels: pd.Index) -> list[str]:
    numbers = pd.to_numeric(pd.Series(labels), errors="coerce")
    if len(labels) and numbers.notna().all():
        return [labels[i] for i in np.argsort(numbers.to_numpy(), kind="stable")]
    return sorted(labels)


def _items(
    attrs: pd.DataFrame, first_seen: pd.Series, mapping: InteractionMapping, problems: list[str]
) -> tuple[pd.DataFrame, dict[str, int], int, dict[str, int]]:
    cat = mapping.category
    n = len(attrs)
    labels = (
        _ids(attrs["category"].dropna(), "", 0).reindex(attrs.index)
        if "category" in attrs
        else pd.Series([None] * n, index=attrs.index, dtype=object)
    )
    known = cat.labels if cat.labels is not None else _label_order(pd.Index(labels.dropna().unique()))
    known = [str(label) for label in known if str(label) != cat.unknown_label or cat.labels is not None]
    if cat.unknown_label not in known:
        known.append(cat.unknown_label)
    categories = {label: i for i, label in enumerate(known)}
    unknown_id = categories[cat.unknown_label]
    unlisted = labels.notna() & ~labels.isin(list(categories))
    if unlisted.any() and cat.on_unknown == "error":
        problems.append(
            f"category column {mapping.items.category!r}: label(s) not in `category.labels`: "
            f"{_sample(labels[unlisted])}"
        )
    category_id = labels.map(categories).fillna(unknown_id).astype(np.int64)
    cat_counts = {
        "items_missing_category": int(labels.isna().sum()),
        "items_unlisted_category": int(unlisted.sum()),
    }

    price = pd.Series(mapping.default_price, index=attrs.index, dtype=float)
    if "price" in attrs:
        given = pd.to_numeric(attrs["price"], errors="coerce")
        bad = attrs["price"][(attrs["price"].notna() & given.isna()) | (given <= 0)]
        if len(bad):
            problems.append(f"price column {mapping.items.price!r}: not a number > 0: {_sample(bad)}")
        price = given.fillna(mapping.default_price)
    item_type = pd.Series("product", index=attrs.index, dtype=object)
    if "item_type" in attrs:
        given_type = attrs["item_type"].astype("string").str.strip().str.lower()
        bad = given_type[given_type.notna() & ~given_type.isin(ITEM_TYPES)]
        if len(bad):
            problems.append(
                f"item_type column {mapping.items.item_type!r}: not one of {list(ITEM_TYPES)}: {_sample(bad)}"
            )
        item_type = given_type.fillna("product").astype(object)
    seller = pd.Series(mapping.seller_prefix + "unknown", index=attrs.index, dtype=object)
    if "seller" in attrs:
        given_seller = attrs["seller"]
        seller = _ids(given_seller.dropna(), mapping.seller_prefix, mapping.id_width).reindex(attrs.index)
        seller = seller.fillna(mapping.seller_prefix + "unknown")
    title = attrs["title"].astype("string") if "title" in attrs else pd.Series(pd.NA, index=attrs.index, dtype="string")
    title = title.fillna(pd.Series(attrs.index, index=attrs.index, dtype="string"))
    frame = pd.DataFrame(
        {
            "item_id": attrs.index.to_numpy(dtype=object),
            "item_type": item_type.to_numpy(dtype=object),
            "seller_id": seller.to_numpy(dtype=object),
            "category_id": category_id.to_numpy(dtype=np.int64),
            "price": price.to_numpy(dtype=float),
            "title": title.to_numpy(dtype=object),
            "created": first_seen.to_numpy(dtype=np.int64) - HOUR_US,
        }
    )
    return frame, categories, unknown_id, cat_counts


def _users(
    attrs: pd.DataFrame, first_seen: pd.Series, mapping: InteractionMapping, problems: list[str]
) -> pd.DataFrame:
    region = (
        attrs["region"].astype("string") if "region" in attrs else pd.Series(pd.NA, index=attrs.index, dtype="string")
    )
    band = pd.Series(pd.NA, index=attrs.index, dtype="string")
    if "age_band" in attrs:
        band = attrs["age_band"].astype("string")
    if "age" in attrs:
        age = pd.to_numeric(attrs["age"], errors="coerce")
        bad = attrs["age"][attrs["age"].notna() & age.isna()]
        if len(bad):
            problems.append(f"age column {mapping.users.age!r}: not a number of years: {_sample(bad)}")
        edges = np.searchsorted(np.array(AGE_BAND_UPPER), age.fillna(0).to_numpy(), side="left")
        banded = pd.Series(np.array(AGE_BANDS, dtype=object)[edges], index=attrs.index, dtype="string")
        band = band.fillna(banded.where(age.notna()))
    return pd.DataFrame(
        {
            "user_id": attrs.index.to_numpy(dtype=object),
            "region": region.fillna(mapping.default_region).to_numpy(dtype=object),
            "age_band": band.fillna("unknown").to_numpy(dtype=object),
            "signup": first_seen.to_numpy(dtype=np.int64) - HOUR_US,
        }
    )


# ---- writing --------------------------------------------------------------------------------------------------------
def _utc(micros: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(micros, dtype=np.int64), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _day(number: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(number))


def _slates(inter: pd.DataFrame, slate_size: int) -> pd.DataFrame:
    """Day, clamped time, slate and position of every interaction, sorted by day (then time, user, item)."""
    inter = inter.sort_values(["user", "ts", "item"], kind="stable", ignore_index=True)
    day = inter["ts"].to_numpy() // DAY_US
    inter["ts"] = np.minimum(inter["ts"].to_numpy(), (day + 1) * DAY_US - FUNNEL_LAST_OFFSET_US)
    inter["day"] = day
    rank = inter.groupby(["user", "day"], sort=False).cumcount().to_numpy()
    inter["position"] = rank % slate_size + 1
    inter["slate"] = rank // slate_size
    return inter.sort_values(["day", "ts", "user", "item"], kind="stable", ignore_index=True)


def _day_events(today: pd.DataFrame, day: date, prepared: Prepared, price: np.ndarray) -> pa.Table:
    """The events of one day: an impression per interaction, then its click / add-to-cart / purchase."""
    stamp = day.strftime("%Y%m%d")
    parts = []
    for offset, event_type in enumerate(STAGES):
        rows = today[today["level"] >= offset]
        parts.append(
            pd.DataFrame(
                {
                    "ts": rows["ts"].to_numpy() + offset * 10**6,
                    "event_type": event_type,
                    "user": rows["user"].to_numpy(),
                    "item": rows["item"].to_numpy(),
                    "slate": rows["slate"].to_numpy(),
                    "position": rows["position"].to_numpy() if offset == 0 else None,
                    "quantity": rows["quantity"].to_numpy() if event_type == "purchase" else None,
                }
            )
        )
    events = pd.concat(parts, ignore_index=True).sort_values(["ts", "user", "item", "event_type"], kind="stable")
    n = len(events)
    item = events["item"].to_numpy()
    users = pa.array(prepared.user_ids[events["user"].to_numpy()], type=pa.string())
    slate = pc.utf8_lpad(pc.cast(pa.array(events["slate"].to_numpy(dtype=np.int64)), pa.string()), 3, "0")
    counter = pc.utf8_lpad(pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string()), 9, "0")
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise(pa.scalar("e" + stamp), counter, ""),
            "event_ts": _utc(events["ts"].to_numpy()),
            "event_type": pa.array(events["event_type"].to_numpy(dtype=object), type=pa.string()),
            "user_id": users,
            "item_id": pa.array(prepared.item_ids[item], type=pa.string()),
            "request_id": pc.binary_join_element_wise(pa.scalar("r" + stamp), users, slate, "-"),
            "position": pa.array(events["position"].to_numpy(dtype=object), type=pa.int64(), from_pandas=True),
            "surface": pa.array(["feed"] * n, type=pa.string()),
            "query": pa.nulls(n, type=pa.string()),
            "price": pa.array(price[item], type=pa.float64()),
            "quantity": pa.array(events["quantity"].to_numpy(dtype=object), type=pa.int64(), from_pandas=True),
        }
    )


def _entity_tables(prepared: Prepared, tier: str) -> dict[str, tuple[pd.DataFrame, str]]:
    """Each entity table with its creation-time column (microseconds), sorted by it."""
    items = prepared.items.sort_values(["created", "item_id"], ignore_index=True)
    sellers = items.groupby("seller_id", as_index=False)["created"].min()
    sellers = sellers.sort_values(["created", "seller_id"])
    return {
        "users": (prepared.users.sort_values(["signup", "user_id"], ignore_index=True), "signup"),
        "items": (items, "created"),
        "sellers": (sellers.assign(tier=tier).reset_index(drop=True), "created"),
    }


def write_raw(prepared: Prepared, out_dir: Path, slate_size: int, stock_units: int, tier: str, region: str) -> dict:
    """Write the raw contract for ``prepared`` under ``out_dir`` (a fresh folder); returns rows per table."""
    inter = _slates(prepared.interactions, slate_size)
    first, last = int(inter["day"].iloc[0]), int(inter["day"].iloc[-1])
    rows = dict.fromkeys(TABLES, 0)
    entities = _entity_tables(prepared, tier)
    entity_first = min(int(frame[col].min()) // DAY_US for frame, col in entities.values())
    columns = {
        "users": lambda f: {
            "user_id": f["user_id"], "signup_ts": _utc(f["signup"]), "region": f["region"], "age_band": f["age_band"]
        },
        "items": lambda f: {
            "item_id": f["item_id"], "item_type": f["item_type"], "seller_id": f["seller_id"],
            "category_id": f["category_id"], "price": f["price"], "title": f["title"], "created_ts": _utc(f["created"]),
        },
        "sellers": lambda f: {
            "seller_id": f["seller_id"], "created_ts": _utc(f["created"]), "region": region, "tier": f["tier"]
        },
    }  # fmt: skip
    for table, (frame, col) in entities.items():
        bounds = np.searchsorted(frame[col].to_numpy() // DAY_US, np.arange(entity_first, last + 2), side="left")
        for k, number in enumerate(range(entity_first, last + 1)):
            part = frame.iloc[bounds[k] : bounds[k + 1]]
            data = {
                name: (value if isinstance(value, pa.Array | str) else value.to_numpy())
                for name, value in columns[table](part).items()
            }
            out = pa.table({f.name: _column(data[f.name], len(part), f.type) for f in SCHEMAS[table]})
            write_partition(out, partition_path(out_dir, table, _day(number)), SCHEMAS[table])
            rows[table] += len(part)

    items = entities["items"][0]
    item_ids = pa.array(items["item_id"].to_numpy(dtype=object), type=pa.string())
    created = items["created"].to_numpy()
    price = items.set_index("item_id")["price"].reindex(prepared.item_ids).to_numpy(dtype=float)  # by item code
    day_bounds = np.searchsorted(inter["day"].to_numpy(), np.arange(first, last + 2), side="left")
    for k, number in enumerate(range(first, last + 1)):
        day, midnight = _day(number), number * DAY_US
        existing = int(np.searchsorted(created, midnight, side="left"))  # created strictly before 00:00
        inventory = pa.table(
            {
                "item_id": item_ids.slice(0, existing),
                "snapshot_ts": _utc(np.full(existing, midnight)),
                "stock_units": pa.array(np.full(existing, stock_units, dtype=np.int64)),
            }
        )
        write_partition(inventory, partition_path(out_dir, "inventory", day), SCHEMAS["inventory"])
        rows["inventory"] += existing
        events = _day_events(inter.iloc[day_bounds[k] : day_bounds[k + 1]], day, prepared, price)
        write_partition(events, partition_path(out_dir, "events", day), SCHEMAS["events"])
        rows["events"] += events.num_rows
    return {"first_day": _day(first).isoformat(), "last_day": _day(last).isoformat(), "rows": rows}


def _column(value: object, n: int, type_: pa.DataType) -> pa.Array:
    if isinstance(value, pa.Array):
        return value.cast(type_)
    if isinstance(value, str):
        return pa.array([value] * n, type=type_)
    return pa.array(value, type=type_)


def _swap_in(staged: Path, raw_dir: Path) -> None:
    """Replace raw_dir's tables by the staged ones: two renames per table; on an error the old tables return."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    trash = raw_dir.parent / f".raw-replaced-{uuid.uuid4().hex[:8]}"
    trash.mkdir()
    moved: list[str] = []
    try:
        for table in TABLES:
            if (raw_dir / table).exists():
                os.replace(raw_dir / table, trash / table)
            moved.append(table)
            os.replace(staged / table, raw_dir / table)
    except BaseException:
        for table in moved:  # put the previous tables back
            shutil.rmtree(raw_dir / table, ignore_errors=True)
            if (trash / table).exists():
                os.replace(trash / table, raw_dir / table)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def import_interactions(
    settings: Settings,
    interactions: pd.DataFrame | Path | str,
    mapping: InteractionMapping,
    items: pd.DataFrame | Path | str | None = None,
    users: pd.DataFrame | Path | str | None = None,
) -> dict:
    """Validate, convert and swap the interactions in as the home's raw data (every table replaced).

    Nothing under ``settings.raw_dir`` changes unless the whole conversion succeeded. Returns a summary (days, rows
    per table, funnel counts, dropped rows, the category ids and the ``SHOPRANK_SIMULATOR__CATEGORIES`` to build
    with), also written to ``<raw_dir>/_import.json``. Raises :class:`ImportValidationError` for unmappable input.
    """

    def load(source: pd.DataFrame | Path | str | None) -> pd.DataFrame | None:
        return source if source is None or isinstance(source, pd.DataFrame) else read_table(source)

    prepared = prepare(load(interactions), mapping, load(items), load(users), settings.simulator.categories)  # type: ignore[arg-type]
    staged = settings.raw_dir.parent / f".raw-import-{uuid.uuid4().hex[:8]}"
    try:
        written = write_raw(
            prepared, staged, settings.simulator.slate_size, mapping.stock_units, mapping.seller_tier,
            mapping.default_region,
        )  # fmt: skip
        _swap_in(staged, settings.raw_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    levels = prepared.interactions["level"]
    n_categories = len(prepared.categories)
    summary = {
        **written,
        "interactions": len(prepared.interactions),
        "funnel": {stage: int((levels >= k).sum()) for k, stage in enumerate(STAGES)},
        "counts": prepared.counts,
        "categories": {
            "n_categories": n_categories,
            "unknown_id": prepared.unknown_category,
            "ids": prepared.categories,
        },
        "build_with": {"SHOPRANK_SIMULATOR__CATEGORIES": max(n_categories, 2)},
        "raw_dir": str(settings.raw_dir),
    }
    (settings.raw_dir / IMPORT_FILE).write_text(json.dumps(summary, indent=2))
    return summary
