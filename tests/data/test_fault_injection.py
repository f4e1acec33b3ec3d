"""Fault injection: every known fault, applied to a copy of a clean simulated home, is caught at the right gate.

One table of faults: each names the gate that must stop it (``raw``: validate_raw, the partition moved to
quarantine; ``marts``: validate_marts; ``drift``: check_drift), the table or suite that must fail, and returns the
evidence the failure must name (a file, an item id, an expectation). The gates run in pipeline order on the copy
(the session's tiny world from conftest, copied per case, never re-simulated): the fault must pass every gate
before its own and fail at it. The clean copy passes all three.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quality.drift import check_drift
from quality.raw import validate_raw
from quality.runner import DataQualityError
from quality.validate import validate_marts
from shoprank.raw_contract import SCHEMAS, partition_path
from shoprank.settings import Settings

from .conftest import RUN_DATE, TINY
from .test_quality_gates import MART_FAULTS, RAW_FAULTS, TINY_DRIFT_BLOCK, _edit_mart, corrupt_events, shifted_prices

PARTITION = f"dt={RUN_DATE}"
FIRST_DAY = TINY.start_date  # the entity tables' first partition: the initial catalogue, users and sellers
DAY_START = pd.Timestamp(RUN_DATE.isoformat(), tz="UTC")
NEXT_TYPE = {"product": "video", "video": "live", "live": "product"}


@dataclass(frozen=True)
class Fault:
    name: str
    gate: str  # raw | marts | drift
    target: str  # raw: the only table that fails; marts: the only suite that fails; drift: the blocked feature
    inject: Callable[[Settings], list[str]]  # corrupts the copy, returns what the failure must name
    quarantined: bool = True  # raw faults: the partition moves to quarantine (a missing one has nothing to move)


def _path(s: Settings, table: str) -> str:
    return str(partition_path(s.raw_dir, table, RUN_DATE))


def _rewrite(s: Settings, table: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Rewrite the run day's partition of ``table``, with the contract's types while the columns still match."""
    path = partition_path(s.raw_dir, table, RUN_DATE)
    frame = edit(pd.read_parquet(path))
    schema = SCHEMAS[table] if list(frame.columns) == SCHEMAS[table].names else None
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


# ---- item 2: partitions that cannot be read -----------------------------------------------------------------
def truncated(table: str) -> Callable[[Settings], list[str]]:
    def inject(s: Settings) -> list[str]:
        path = partition_path(s.raw_dir, table, RUN_DATE)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return ["file_readable", str(path)]

    return inject


def zero_bytes(s: Settings) -> list[str]:
    partition_path(s.raw_dir, "users", RUN_DATE).write_bytes(b"")
    return ["file_readable", _path(s, "users")]


def not_parquet(s: Settings) -> list[str]:
    partition_path(s.raw_dir, "sellers", RUN_DATE).write_text("seller_id,created_ts\ns9999,2026-01-07\n")
    return ["file_readable", _path(s, "sellers")]


def no_files(s: Settings) -> list[str]:
    partition_path(s.raw_dir, "inventory", RUN_DATE).unlink()
    return ["partition_has_files", f"inventory/{PARTITION}"]


def missing_partition(s: Settings) -> list[str]:
    shutil.rmtree(partition_path(s.raw_dir, "users", RUN_DATE).parent)
    return ["partition_exists", "is missing"]


def files_of_two_schemas(s: Settings) -> list[str]:
    path = partition_path(s.raw_dir, "events", RUN_DATE)
    second = path.with_name("part-1.parquet")
    pq.write_table(pq.read_table(path).drop_columns(["query"]).slice(0, 10), second)
    return ["files_share_schema", str(second)]


def wrong_type(s: Settings) -> list[str]:
    path = partition_path(s.raw_dir, "events", RUN_DATE)
    pq.write_table(pa.Table.from_pandas(pd.read_parquet(path).astype({"price": str}), preserve_index=False), path)
    return ["raw.events.schema", "price:string"]


def items_missing_a_column(s: Settings) -> list[str]:
    _rewrite(s, "items", lambda f: f.drop(columns=["title"]))
    return ["raw.items.schema", "title:string"]


# ---- item 3: entities redefined by a later partition ----------------------------------------------------------
def redefined(table: str, change: Callable[[pd.DataFrame], pd.DataFrame], evidence: str) -> Callable:
    """Re-emit two entities of the first partition in the run day's, changed by ``change``."""

    def inject(s: Settings) -> list[str]:
        first = pd.read_parquet(partition_path(s.raw_dir, table, FIRST_DAY)).head(2)
        _rewrite(s, table, lambda today: pd.concat([today, change(first.copy())], ignore_index=True))
        return [f"raw.{table}.changes", evidence, *first.iloc[:, 0]]

    return inject


def _set(column: str, value: Callable[[pd.Series], pd.Series]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = value(frame[column])
        return frame

    return change


# ---- item 4: the funnel and creation times ------------------------------------------------------------------
def purchases_without_click(s: Settings) -> list[str]:
    """Three purchases of items the buyer never saw or clicked (today or in the lookback day)."""
    days = [RUN_DATE - timedelta(days=1), RUN_DATE]
    seen = pd.concat([pd.read_parquet(partition_path(s.raw_dir, "events", d)) for d in days])
    engaged = set(zip(seen["user_id"], seen["item_id"], strict=True))
    items = pd.read_parquet(partition_path(s.raw_dir, "items", FIRST_DAY))["item_id"]

    def edit(events: pd.DataFrame) -> pd.DataFrame:
        fake = events[events["event_type"] == "purchase"].head(3).copy()
        fake["item_id"] = [next(i for i in items if (u, i) not in engaged) for u in fake["user_id"]]
        fake["event_id"] = [f"efault{k}" for k in range(len(fake))]
        pairs.extend(f"{u}/{i}" for u, i in zip(fake["user_id"], fake["item_id"], strict=True))
        return pd.concat([events, fake], ignore_index=True)

    pairs: list[str] = []
    _rewrite(s, "events", edit)
    return ["raw.events.funnel", "clicks_before", *pairs]


def events_before_item_creation(s: Settings) -> list[str]:
    """Impressions moved to an item created later that day, before its creation."""
    created = pd.read_parquet(partition_path(s.raw_dir, "items", RUN_DATE)).sort_values("created_ts").iloc[-1]

    def edit(events: pd.DataFrame) -> pd.DataFrame:
        # impressions of pairs that went no further, so the funnel of other pairs is untouched
        pair = events["user_id"] + "/" + events["item_id"]
        funnel = set(pair[events["event_type"] != "impression"])
        early = (events["event_type"] == "impression") & (events["event_ts"] < created["created_ts"])
        rows = events.index[early & ~pair.isin(funnel)][:3]
        events.loc[rows, "item_id"] = created["item_id"]
        return events

    _rewrite(s, "events", edit)
    return ["raw.events.item_created", "first_event_ts", created["item_id"]]


def _existing_raw(fault: Callable[[pd.DataFrame], pd.DataFrame], expectation: str, evidence: str) -> Fault:
    def inject(s: Settings) -> list[str]:
        corrupt_events(s, fault)
        return [expectation, evidence]

    return Fault(fault.__name__, "raw", "events", inject)


# ---- marts ----------------------------------------------------------------------------------------------------
def purchase_labels_without_click(s: Settings) -> list[str]:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        clicks = f.groupby(["user_id", "item_id"])["label_click"].transform("sum")
        rows = f.index[clicks == 0][:3]
        f.loc[rows, ["label_purchase", "relevance"]] = [1, 3]
        return f

    _edit_mart(s, "training_examples", edit)
    return ["expect_column_pair_values_a_to_be_greater_than_b", "clicks"]


def item_purchases_above_clicks(s: Settings) -> list[str]:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[f.index[:3], "item_purchases_7d"] = f.loc[f.index[:3], "item_clicks_7d"] + 4
        return f

    _edit_mart(s, "item_features", edit)
    return ["item_purchases_7d"]


def negative_item_prices(s: Settings) -> list[str]:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[f.index[:2], "item_price"] = -3.5
        return f

    _edit_mart(s, "item_features", edit)
    return ["item_price", "-3.5"]


def duplicated_impressions(s: Settings) -> list[str]:
    _edit_mart(s, "training_examples", lambda f: pd.concat([f, f.head(1)], ignore_index=True))
    return ["expect_column_values_to_be_unique", "impression_id"]


def _existing_mart(fault: Callable[[Settings], None], suite: str, expectation: str, evidence: str) -> Fault:
    def inject(s: Settings) -> list[str]:
        fault(s)
        return [expectation, evidence]

    return Fault(fault.__name__, "marts", suite, inject)


def _shifted_prices(s: Settings) -> list[str]:
    shifted_prices(s)  # valid prices (positive), five times higher on the run's day: only drift can see it
    return ["item_price"]


FAULTS = [
    *(_existing_raw(*fault) for fault in RAW_FAULTS),
    Fault("truncated_events_file", "raw", "events", truncated("events")),
    Fault("truncated_items_file", "raw", "items", truncated("items")),
    Fault("zero_byte_file", "raw", "users", zero_bytes),
    Fault("not_parquet", "raw", "sellers", not_parquet),
    Fault("partition_without_files", "raw", "inventory", no_files),
    Fault("missing_partition", "raw", "users", missing_partition, quarantined=False),
    Fault("files_of_two_schemas", "raw", "events", files_of_two_schemas),
    Fault("wrong_type", "raw", "events", wrong_type),
    Fault("items_missing_a_column", "raw", "items", items_missing_a_column),
    Fault(
        "item_new_category",
        "raw",
        "items",
        redefined("items", _set("category_id", lambda c: (c + 1) % TINY.categories), "previous_category_id"),
    ),
    Fault("item_price_times_ten", "raw", "items", redefined("items", _set("price", lambda p: p * 10), "price_ratio")),
    Fault(
        "item_new_seller",
        "raw",
        "items",
        redefined(
            "items",
            _set("seller_id", lambda s: s.map(lambda v: "s0002" if v == "s0001" else "s0001")),
            "previous_seller_id",
        ),
    ),
    Fault(
        "item_new_type",
        "raw",
        "items",
        redefined("items", _set("item_type", lambda t: t.map(NEXT_TYPE)), "previous_item_type"),
    ),
    Fault(
        "item_created_earlier",  # earlier, so no event precedes it: only the redefinition is wrong
        "raw",
        "items",
        redefined("items", _set("created_ts", lambda t: t - pd.Timedelta(days=3)), "previous_created_ts"),
    ),
    Fault(
        "user_new_signup",
        "raw",
        "users",
        redefined("users", _set("signup_ts", lambda t: t - pd.Timedelta(hours=5)), "previous_signup_ts"),
    ),
    Fault(
        "seller_new_created",
        "raw",
        "sellers",
        redefined("sellers", _set("created_ts", lambda t: t - pd.Timedelta(days=1)), "previous_created_ts"),
    ),
    Fault("purchases_without_click", "raw", "events", purchases_without_click),
    Fault("events_before_item_creation", "raw", "events", events_before_item_creation),
    *(_existing_mart(*fault) for fault in MART_FAULTS),
    Fault("purchase_labels_without_click", "marts", "marts.user_item_funnel", purchase_labels_without_click),
    Fault("item_purchases_above_clicks", "marts", "marts.item_features", item_purchases_above_clicks),
    Fault("negative_item_prices", "marts", "marts.item_features", negative_item_prices),
    Fault("duplicated_impressions", "marts", "marts.training_examples", duplicated_impressions),
    Fault("shifted_prices", "drift", "item_price", _shifted_prices),
]
GATES: dict[str, Callable] = {"raw": validate_raw, "marts": validate_marts, "drift": check_drift}


@pytest.fixture
def home(copied_home: Settings) -> Settings:
    copied_home.quality.build_data_docs = False
    # The tiny world is lumpy (clean day-over-day PSI up to ~1.4): block at 2.0 as test_quality_gates does.
    copied_home.quality.drift_block_psi = float(TINY_DRIFT_BLOCK)
    return copied_home


def first_stop(settings: Settings) -> tuple[str, DataQualityError] | None:
    """Run the gates in pipeline order; the first that raises, with its error (None: all passed)."""
    for gate, run in GATES.items():
        try:
            run(settings, RUN_DATE)
        except DataQualityError as error:
            return gate, error
    return None


def test_the_fault_table_covers_every_gate_and_every_known_fault() -> None:
    names = {f.name for f in FAULTS}
    assert len(names) == len(FAULTS)
    assert {f[0].__name__ for f in RAW_FAULTS} | {f[0].__name__ for f in MART_FAULTS} <= names
    assert {f.gate for f in FAULTS} == set(GATES)


def test_the_clean_home_passes_every_gate(home: Settings) -> None:
    assert first_stop(home) is None
    raw = json.loads((home.quality_dir / f"raw-{RUN_DATE}.json").read_text())
    # The simulator never redefines an entity, and its funnel and creation times hold.
    assert raw["results"]["raw.items.changes"]["rows"] == 0
    assert raw["results"]["raw.events.funnel"]["rows"] > 0 and raw["results"]["raw.events.funnel"]["success"]
    assert raw["results"]["raw.events.item_created"]["success"]
    assert not list(home.quarantine_dir.glob("*/*"))


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_the_fault_is_caught_at_its_gate(home: Settings, fault: Fault) -> None:
    stale = home.quality_dir / f"raw-{RUN_DATE}.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(json.dumps({"run_date": RUN_DATE.isoformat(), "success": True}))  # a previous run's pass
    evidence = fault.inject(home)

    stop = first_stop(home)
    assert stop is not None, f"{fault.name} passed every gate"
    gate, error = stop
    message = str(error)
    assert gate == fault.gate, message
    missing = [e for e in evidence if e not in message]
    assert not missing, f"{missing} not named in: {message}"
    if gate == "raw":
        assert {f["table"] for f in error.failures} == {fault.target}, message
        assert f"{fault.target} " in message and PARTITION in message
        result = json.loads(stale.read_text())
        assert result["success"] is False and result["status"] == "failed"
        raw_partition = partition_path(home.raw_dir, fault.target, RUN_DATE).parent
        held = home.quarantine_dir / fault.target / PARTITION
        if fault.quarantined:
            assert not raw_partition.exists() and (held / "validation.json").exists()
            assert result["quarantined"] == {fault.target: str(held)}
        else:
            assert result["quarantined"] == {}
    elif gate == "marts":
        assert {f["suite"] for f in error.failures} == {fault.target}, message
    else:
        assert {f["kwargs"]["feature"] for f in error.failures} >= {fault.target}, message


def test_a_legitimate_catalogue_change_passes(home: Settings) -> None:
    """A re-emitted item may change its price within settings.quality.max_price_change_ratio, and its title."""
    first = pd.read_parquet(partition_path(home.raw_dir, "items", FIRST_DAY)).head(2)
    first["price"] *= 1.5
    first["title"] = "renamed " + first["title"]
    _rewrite(home, "items", lambda today: pd.concat([today, first], ignore_index=True))
    assert validate_raw(home, RUN_DATE)["success"]
    changes = json.loads((home.quality_dir / f"raw-{RUN_DATE}.json").read_text())["results"]["raw.items.changes"]
    assert changes["rows"] == 2 and changes["success"]

    home.quality.max_price_change_ratio = 1.2  # the same change beyond a tighter bound fails, naming the items
    with pytest.raises(DataQualityError, match="price_ratio") as error:
        validate_raw(home, RUN_DATE)
    assert all(item in str(error.value) for item in first["item_id"])


def test_a_click_before_midnight_counts_for_a_purchase_after_it(home: Settings) -> None:
    """The funnel looks back settings.quality.funnel_lookback_days partitions; with no lookback it fails."""
    today = partition_path(home.raw_dir, "events", RUN_DATE)
    yesterday = partition_path(home.raw_dir, "events", RUN_DATE - timedelta(days=1))
    events = pd.read_parquet(today)
    moved = events["event_type"].isin(["impression", "click"]) & events["user_id"].isin(
        events.loc[events["event_type"] == "purchase", "user_id"].head(2)
    )
    # Those users' impressions and clicks happened "yesterday" at 23:59 (still before their purchases).
    earlier = events[moved].assign(event_ts=DAY_START - pd.Timedelta(seconds=30))
    before = pd.read_parquet(yesterday)
    for path, frame in ((today, events[~moved]), (yesterday, pd.concat([before, earlier], ignore_index=True))):
        pq.write_table(pa.Table.from_pandas(frame, schema=SCHEMAS["events"], preserve_index=False), path)
    assert validate_raw(home, RUN_DATE)["success"]

    home.quality.funnel_lookback_days = 0
    with pytest.raises(DataQualityError, match="raw.events.funnel"):
        validate_raw(home, RUN_DATE)


def test_an_unreadable_earlier_partition_stops_the_gate_and_moves_nothing(home: Settings) -> None:
    """History is not the run day's data: the gate names the file and quarantines nothing (the day's events would
    otherwise fail for pointing at items only that file defines)."""
    first = partition_path(home.raw_dir, "items", FIRST_DAY)
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    with pytest.raises(DataQualityError) as error:
        validate_raw(home, RUN_DATE)
    history = [f for f in error.value.failures if f["suite"] == "raw.items.history"]
    assert history and history[0]["partition"] == f"dt={FIRST_DAY}" and str(first) in str(error.value)
    assert "nothing quarantined" in str(error.value)
    assert not home.quarantine_dir.exists()  # every run-day partition stays where it was
    result = json.loads((home.quality_dir / f"raw-{RUN_DATE}.json").read_text())
    assert result["success"] is False and result["quarantined"] == {}


def test_a_gate_that_crashes_leaves_a_failed_result_never_a_stale_pass(
    home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert validate_raw(home, RUN_DATE)["success"]
    # A setting DuckDB rejects: the gate itself breaks (not the data), after the previous run's pass was written.
    monkeypatch.setenv("SHOPRANK_DUCKDB_MEMORY_LIMIT", home.duckdb_memory_limit)  # restored after the test
    home.warehouse_memory_limit = "a lot"
    with pytest.raises(Exception, match="Memory") as error:
        validate_raw(home, RUN_DATE)
    assert not isinstance(error.value, DataQualityError)
    result = json.loads((home.quality_dir / f"raw-{RUN_DATE}.json").read_text())
    assert result["success"] is False and result["status"] == "error" and "Memory" in result["error"]
    assert not home.quarantine_dir.exists()
