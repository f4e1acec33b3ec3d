"""Fault injection: corrupt a copy of a real simulated day, run the pipeline from the gate, assert it stops there.

One clean world (the session's tiny warehouse) is copied per test; each fault corrupts the copy's run day (raw
events, or the marts for the mart and drift gates). The pipeline steps then run in order from the gate through
``orchestration.pipeline`` with the copy's settings: the gate must raise naming the right suite, expectation, table and
partition, and nothing after it may run (the model store stays empty). The clean copy must pass every gate.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from orchestration import pipeline
from orchestration.cli import app
from quality.drift import psi
from quality.runner import DataQualityError
from shoprank.mart_files import day_file, mart_files
from shoprank.raw_contract import SCHEMAS, partition_path
from shoprank.settings import Settings, apply_runtime_env, get_settings

from .conftest import RUN_DATE, TINY

# The tiny world (300 requests a day, 150 items) is lumpy: clean day-over-day PSI reaches ~1.4 on item_cvr_7d.
# Block at 2.0 here; the injected shift below scores ~6.7 (default sizes: clean max 0.07, default block 0.25).
TINY_DRIFT_BLOCK = "2.0"
DAY_START = pd.Timestamp(RUN_DATE.isoformat(), tz="UTC")


@pytest.fixture
def gate_home(warehouse: dict, tmp_path: Path) -> Iterator[Settings]:
    """A copy of the clean world (raw + the marts' build) that the process-wide settings point at, as a DAG task's
    would."""
    source: Settings = warehouse["settings"]
    home = tmp_path / "home"
    shutil.copytree(source.raw_dir, home / "raw")
    shutil.copytree(source.marts_build_dir, home / "warehouse" / "build")
    saved = dict(os.environ)
    os.environ.update(
        {
            "SHOPRANK_HOME": str(home),
            "SHOPRANK_QUALITY__DRIFT_BLOCK_PSI": TINY_DRIFT_BLOCK,
            "SHOPRANK_QUALITY__BUILD_DATA_DOCS": "false",  # the clean-day test turns it on and checks the HTML
            **{f"SHOPRANK_SIMULATOR__{k.upper()}": str(v) for k, v in TINY.model_dump().items()},
        }
    )
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        # Back to the session's own home (as tests/conftest.py set it), not whatever a build exported before us:
        # later tests (the e2e DAG run) read the process-wide settings.
        os.environ.clear()
        os.environ.update(saved)
        os.environ["SHOPRANK_HOME"] = os.environ["SHOPRANK_TEST_HOME"]
        get_settings.cache_clear()
        apply_runtime_env(get_settings())


def run_from(gate: str) -> tuple[str, DataQualityError]:
    """Run the pipeline's steps in order from ``gate``; return the step that raised and its error."""
    names = list(pipeline.STEPS)
    for name in names[names.index(gate) :]:
        try:
            pipeline.STEPS[name](RUN_DATE)
        except DataQualityError as error:
            return name, error
    raise AssertionError(f"no gate stopped the run from {gate}")


def model_store_listing(settings: Settings) -> list[str]:
    store = settings.model_store_dir / "models"
    return sorted(str(p.relative_to(store)) for p in store.rglob("*")) if store.exists() else []


# ---- raw faults: each corrupts the run day's events partition ------------------------------------------------
def null_keys(events: pd.DataFrame) -> pd.DataFrame:
    events.loc[events.index[:3], "user_id"] = None
    return events


def duplicated_event_ids(events: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([events, events.head(5)], ignore_index=True)


def negative_prices(events: pd.DataFrame) -> pd.DataFrame:
    events.loc[events.index[:4], "price"] = -9.99
    return events


def events_from_the_future(events: pd.DataFrame) -> pd.DataFrame:
    events.loc[events.index[:2], "event_ts"] = pd.Timestamp(datetime.now(UTC) + timedelta(days=3))
    return events


def unknown_items(events: pd.DataFrame) -> pd.DataFrame:
    events.loc[events.index[:6], "item_id"] = "i999999"
    return events


def missing_column(events: pd.DataFrame) -> pd.DataFrame:
    return events.drop(columns=["surface"])


def empty_partition(events: pd.DataFrame) -> pd.DataFrame:
    return events.iloc[0:0]


def a_tenth_of_the_volume(events: pd.DataFrame) -> pd.DataFrame:
    return events.iloc[: len(events) // 10]


RAW_FAULTS = [
    (null_keys, "expect_column_values_to_not_be_null", "user_id"),
    (duplicated_event_ids, "expect_column_values_to_be_unique", "event_id"),
    (negative_prices, "expect_column_values_to_be_between", "price"),
    (events_from_the_future, "expect_column_max_to_be_between", "event_ts"),
    (unknown_items, "expect_column_values_to_be_in_set", "i999999"),
    (missing_column, "expect_table_columns_to_match_set", "surface"),
    (empty_partition, "expect_table_row_count_to_be_between", "min_value"),
    (a_tenth_of_the_volume, "expect_table_row_count_to_be_between", "max_value"),
]


def corrupt_events(settings: Settings, fault: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    corrupted = fault(pd.read_parquet(path))
    # Written with the contract's types whenever the columns still match it (an empty frame would lose them).
    schema = SCHEMAS["events"] if list(corrupted.columns) == SCHEMAS["events"].names else None
    pq.write_table(pa.Table.from_pandas(corrupted, schema=schema, preserve_index=False), path)
    return path


@pytest.mark.parametrize(("fault", "expectation", "evidence"), RAW_FAULTS, ids=[f[0].__name__ for f in RAW_FAULTS])
def test_raw_fault_stops_the_run_at_validate_raw(
    gate_home: Settings, fault: Callable[[pd.DataFrame], pd.DataFrame], expectation: str, evidence: str
) -> None:
    path = corrupt_events(gate_home, fault)
    corrupted = path.read_bytes()
    step, error = run_from("validate-raw")

    assert step == "validate-raw"
    message = str(error)
    assert "raw.events" in message and f"dt={RUN_DATE}" in message and expectation in message, message
    assert {(f["table"], f["partition"]) for f in error.failures} == {("events", f"dt={RUN_DATE}")}
    failed = [f for f in error.failures if f["expectation"] == expectation]
    assert failed and evidence in json.dumps(failed, default=str) + message, message
    # Quarantined byte for byte with its result beside it; nothing downstream ran.
    held = gate_home.quarantine_dir / "events" / f"dt={RUN_DATE}"
    assert not path.exists() and (held / "part-0.parquet").read_bytes() == corrupted
    assert json.loads((held / "validation.json").read_text())["failures"]
    assert not gate_home.warehouse_path.exists() and model_store_listing(gate_home) == []


def test_failure_names_sample_rows(gate_home: Settings) -> None:
    corrupt_events(gate_home, unknown_items)
    with pytest.raises(DataQualityError) as error:
        pipeline.validate_raw(RUN_DATE)
    (failure,) = [f for f in error.value.failures if f["kwargs"].get("column") == "item_id"]
    assert failure["unexpected_count"] == 6 and failure["sample"][0] == "i999999"
    assert failure["rows"] and all(row["item_id"] == "i999999" for row in failure["rows"])
    assert "row of events: {'event_id'" in str(error.value)


def test_quarantine_fix_release_and_rerun(gate_home: Settings) -> None:
    clean = partition_path(gate_home.raw_dir, "events", RUN_DATE).read_bytes()
    corrupt_events(gate_home, duplicated_event_ids)
    with pytest.raises(DataQualityError):
        pipeline.validate_raw(RUN_DATE)

    # A re-run before the fix says where the partition is and how to release it.
    with pytest.raises(DataQualityError, match="quarantine release --table events"):
        pipeline.validate_raw(RUN_DATE)

    cli = CliRunner()
    listed = json.loads(cli.invoke(app, ["quarantine", "list"]).stdout)
    assert [(e["table"], e["dt"]) for e in listed] == [("events", RUN_DATE.isoformat())]
    assert "raw.events: expect_column_values_to_be_unique" in listed[0]["failed"]

    held = gate_home.quarantine_dir / "events" / f"dt={RUN_DATE}" / "part-0.parquet"
    fixed = pd.read_parquet(held).drop_duplicates("event_id")
    # Rewritten with the contract's types: a plain pandas round trip turns the nullable ints into doubles, which
    # the schema suite would (rightly) reject.
    pq.write_table(pa.Table.from_pandas(fixed, schema=SCHEMAS["events"], preserve_index=False), held)
    released = cli.invoke(app, ["quarantine", "release", "--table", "events", "--dt", RUN_DATE.isoformat()])
    assert released.exit_code == 0, released.output
    assert json.loads(cli.invoke(app, ["quarantine", "list"]).stdout) == []
    assert pd.read_parquet(partition_path(gate_home.raw_dir, "events", RUN_DATE)).equals(fixed)
    assert pipeline.validate_raw(RUN_DATE)["success"]
    assert len(clean) > 0 and list((gate_home.quality_dir / "released").glob("events-dt=*.json"))
    # Releasing again refuses: nothing is in quarantine any more.
    again = cli.invoke(app, ["quarantine", "release", "--table", "events", "--dt", RUN_DATE.isoformat()])
    assert again.exit_code == 1


# ---- mart and drift faults: each corrupts the copy's marts ------------------------------------------------
def _edit_mart(
    settings: Settings, name: str, edit: Callable[[pd.DataFrame], pd.DataFrame], day: date | None = None
) -> None:
    """Rewrite mart ``name``'s file in the build area through ``edit``: a day-partitioned mart's file of ``day``
    (None: its newest day's file), else its one file."""
    files = mart_files(settings.marts_build_dir, name)
    path = files[-1] if day is None or len(files) == 1 else day_file(settings.marts_build_dir, name, day)
    edit(pd.read_parquet(path)).to_parquet(path, index=False)


def ctr_above_one(s: Settings) -> None:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[f.index[:3], "user_ctr_30d"] = 1.7
        return f

    _edit_mart(s, "user_features", edit)


def stale_snapshot(s: Settings) -> None:
    _edit_mart(s, "item_features", lambda f: f[f["feature_ts"] < f["feature_ts"].max()])


def leaked_labels(s: Settings) -> None:
    """The run day's snapshot counts the run day's own impressions (a `<=` where `<` belongs)."""
    day = s.raw_dir / "events" / f"dt={RUN_DATE}"
    events = pd.read_parquet(day)
    same_day = events[events["event_type"] == "impression"].groupby("user_id").size()

    def edit(f: pd.DataFrame) -> pd.DataFrame:
        rows = f["feature_ts"] == DAY_START
        extra = f.loc[rows, "user_id"].map(same_day).fillna(0).astype("int64")
        f.loc[rows, "user_impressions_30d"] += extra
        return f

    _edit_mart(s, "user_features", edit, day=RUN_DATE)  # the run day's snapshot: its own day file


def lost_examples(s: Settings) -> None:
    _edit_mart(s, "training_examples", lambda f: f.iloc[:-25])


MART_FAULTS = [
    (ctr_above_one, "marts.user_features", "expect_column_values_to_be_between", "1.7"),
    (stale_snapshot, "marts.item_features", "expect_column_max_to_be_between", "feature_ts"),
    (leaked_labels, "marts.point_in_time", "expect_column_pair_values_a_to_be_greater_than_b", "feature_impressions"),
    (lost_examples, "marts.training_examples", "expect_table_row_count_to_equal", "value"),
]


@pytest.mark.parametrize(
    ("fault", "suite", "expectation", "evidence"), MART_FAULTS, ids=[f[0].__name__ for f in MART_FAULTS]
)
def test_mart_fault_stops_the_run_at_validate_marts(
    gate_home: Settings, fault: Callable[[Settings], None], suite: str, expectation: str, evidence: str
) -> None:
    fault(gate_home)
    step, error = run_from("validate-marts")
    assert step == "validate-marts"
    failed = [f for f in error.failures if f["suite"] == suite and f["expectation"] == expectation]
    assert failed, str(error)
    assert suite in str(error) and evidence in str(error)
    assert {f["suite"] for f in error.failures} == {suite}, str(error)  # the right gate, nothing else flagged
    assert model_store_listing(gate_home) == []


def shifted_prices(s: Settings) -> None:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[f["feature_ts"] == DAY_START, "item_price"] *= 5
        return f

    _edit_mart(s, "item_features", edit)


def test_shifted_feature_distribution_stops_the_run_at_check_drift(gate_home: Settings) -> None:
    shifted_prices(gate_home)
    # Prices stay valid (positive): the mart suites pass, only the drift gate can see it.
    assert pipeline.validate_marts(RUN_DATE)["success"]
    step, error = run_from("check-drift")
    assert step == "check-drift"
    blocked = {f["kwargs"]["feature"] for f in error.failures}
    assert "item_price" in blocked and "item_price" in str(error)
    report = json.loads((gate_home.quality_dir / f"drift-{RUN_DATE}.json").read_text())
    assert report["features"]["item_price"]["status"] == "block" and report["success"] is False
    assert report["features"]["item_price"]["current_mean"] > 3 * report["features"]["item_price"]["reference_mean"]
    assert model_store_listing(gate_home) == []


def test_clean_day_passes_every_gate(gate_home: Settings) -> None:
    gate_home.quality.build_data_docs = True
    raw = pipeline.validate_raw(RUN_DATE)
    marts = pipeline.validate_marts(RUN_DATE)
    drift = pipeline.check_drift(RUN_DATE)
    assert raw["success"] and marts["success"] and drift["success"]
    assert raw["volume"]["band"] and not raw["notes"]
    assert set(marts["tables"]) == {
        "training_examples",
        "item_features",
        "user_features",
        "point_in_time",
        "user_item_funnel",
    }
    assert not list(gate_home.quarantine_dir.glob("*/*"))
    report = json.loads((gate_home.quality_dir / f"drift-{RUN_DATE}.json").read_text())
    assert set(report["features"]) >= {"item_price", "user_category_affinity", "price_to_user_avg"}
    # Every validation rebuilt the Data Docs, which show the suites that ran.
    docs = gate_home.quality_dir / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert (docs / "index.html").exists()
    assert list((docs / "validations").rglob("*.html")), "no validation pages in Data Docs"
    index = (docs / "index.html").read_text()
    assert "raw.events" in index and "marts.user_features" in index


def test_first_day_passes_without_a_volume_band(gate_home: Settings) -> None:
    first = RUN_DATE - timedelta(days=TINY.days - 1)
    summary = pipeline.validate_raw(first)
    assert summary["success"] and summary["volume"]["band"] is None and "first day" in summary["notes"][0]


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.normal(size=5000))
    assert psi(reference, pd.Series(rng.normal(size=5000)), 10) < 0.02
    assert psi(reference, pd.Series(rng.normal(loc=1.0, size=5000)), 10) > 0.25
    with_missing = pd.Series(np.where(rng.random(5000) < 0.5, np.nan, rng.normal(size=5000)))
    assert psi(reference, with_missing, 10) > 0.25  # a column going half-missing is drift too
