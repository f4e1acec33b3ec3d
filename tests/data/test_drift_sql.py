"""The drift gate counts in DuckDB (quality.drift_sql) and gets what the pandas reference gets on the same marts.

The reference: feature rows as training sees them (quality.drift.feature_rows: pandas joins and
add_derived_features), then quality.drift.psi per feature. Same bin edges, same counts per bin, same PSI and means,
on the clean tiny world and on one with drift and missing values the gate must see.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from quality.drift import bin_counts, drift_report, feature_rows, psi, reference_edges, reference_window
from quality.drift_sql import count_bins, create_feature_rows
from shoprank.mart_files import mart_files, read_mart
from shoprank.ranking_features import model_feature_columns
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings
from tests.support.marts import write_mart_rows

from .conftest import RUN_DATE

DAY_START = pd.Timestamp(RUN_DATE.isoformat(), tz="UTC")


def pandas_reference(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = feature_rows(settings, RUN_DATE, settings.marts_build_dir)
    days = reference_window(settings, sorted(frame["day"].unique()), RUN_DATE)
    return frame[frame["day"].isin(days)], frame[frame["day"] == RUN_DATE]


def perturb(settings: Settings) -> None:
    """Run-day prices of half the items x5 (drift), a third of the run day's user snapshots gone (missing users:
    affinity 0, price ratio NaN) and some CTRs NaN."""
    path = settings.marts_build_dir / "item_features.parquet"
    items = pd.read_parquet(path)
    today = items["feature_ts"] == DAY_START
    items.loc[today & (items.index % 2 == 0), "item_price"] *= 5
    items.to_parquet(path, index=False)
    users = read_mart(settings.marts_build_dir, "user_features")
    users = users[~((users["feature_ts"] == DAY_START) & (users.index % 3 == 0))]
    users.loc[users.index % 7 == 0, "user_ctr_30d"] = np.nan
    write_mart_rows(settings.marts_build_dir, "user_features", users)


@pytest.mark.parametrize("world", ["clean", "perturbed"])
@pytest.mark.parametrize("reference_days", [1, 0])
def test_sql_drift_equals_the_pandas_reference(copied_home: Settings, world: str, reference_days: int) -> None:
    settings = copied_home
    settings.quality.drift_reference_days = reference_days
    if world == "perturbed":
        perturb(settings)
    reference, current = pandas_reference(settings)
    assert len(reference) and len(current)
    columns = model_feature_columns()
    bins = settings.quality.drift_bins

    con = duckdb_connect(settings)
    days = sorted({d for d in reference["day"]})
    create_feature_rows(con, settings.marts_build_dir, days, RUN_DATE, settings.simulator.categories, columns)
    counted, rows = count_bins(con, columns, bins)
    con.close()
    assert rows == {"reference": len(reference), "current": len(current)}

    report = drift_report(settings, RUN_DATE, settings.marts_build_dir)
    assert report["reference_days"] == [d.isoformat() for d in days]
    assert (report["reference_rows"], report["current_rows"]) == (len(reference), len(current))
    for column in columns:
        ref = pd.to_numeric(reference[column], errors="coerce").to_numpy(dtype=float)
        cur = pd.to_numeric(current[column], errors="coerce").to_numpy(dtype=float)
        inner = reference_edges(ref[~np.isnan(ref)], bins)
        sql = counted[column]
        assert np.array_equal(sql.edges, inner), column
        assert np.array_equal(sql.reference, bin_counts(ref, inner)), column
        assert np.array_equal(sql.current, bin_counts(cur, inner)), column
        expected = psi(reference[column], current[column], bins)
        assert report["features"][column]["psi"] == round(expected, 4), column
        assert report["features"][column]["reference_mean"] == pytest.approx(round(np.nanmean(ref), 4), abs=1e-4)
        assert report["features"][column]["current_mean"] == pytest.approx(round(np.nanmean(cur), 4), abs=1e-4)
    if world == "perturbed":
        assert report["features"]["item_price"]["psi"] > 0.25
        assert np.isnan(current["price_to_user_avg"]).any() and (current["user_category_affinity"] == 0).any()


def test_reference_edges_are_order_statistics_whatever_the_float_rounding() -> None:
    """Ranks ceil(n * i / bins) - 1 in integers: n * 0.1 * 3 rounding (0.30000000000000004) never picks a
    neighbour, and an edge is always a reference value (a discrete value on an edge shares its reference bin)."""
    values = np.arange(10, dtype=float)  # n * i / bins is an integer for every i
    assert list(reference_edges(values, 10)) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(reference_edges(np.array([0.0, 0, 0, 1, 1, 2]), 4)) == [1.0]
    assert len(reference_edges(np.array([]), 10)) == 0
    rng = np.random.default_rng(3)
    for n in (7, 99, 1000, 1001):
        values = rng.integers(0, 5, size=n).astype(float)
        assert set(reference_edges(values, 10)) <= set(values)


def test_no_reference_day_leaves_the_report_empty(copied_home: Settings) -> None:
    first_day = RUN_DATE - timedelta(days=copied_home.simulator.days - 1)
    report = drift_report(copied_home, first_day, copied_home.marts_build_dir)
    assert report["features"] == {} and report["reference_days"] == []


def test_feature_rows_of_given_days_read_only_those_days(copied_home: Settings) -> None:
    """feature_rows for some days (score drift's current side: the run's day) equals the whole history's rows of
    those days, and reads only their dt partitions: the other days' feature rows restamped to the run day (so they
    would join the run day's impressions twice if read) change nothing."""
    settings = copied_home
    marts = settings.marts_build_dir
    whole = feature_rows(settings, RUN_DATE, marts)
    days = [RUN_DATE - timedelta(days=1), RUN_DATE]
    expected = whole[whole["day"].isin(days)].reset_index(drop=True)
    assert len(expected) and len(expected) < len(whole)
    for name in ("user_features", "item_features", "user_window_features", "item_window_features"):
        restamped = 0
        for path in mart_files(marts, name):  # its file, or a day-partitioned mart's day files
            frame = pd.read_parquet(path)
            other = ~frame["dt"].isin(days)
            restamped += int(other.sum())
            frame.loc[other, "feature_ts"] = DAY_START
            frame.to_parquet(path, index=False)
        assert restamped, name
    assert len(feature_rows(settings, RUN_DATE, marts)) > len(whole)  # read whole, the restamped rows do join

    read = feature_rows(settings, RUN_DATE, marts, days=days).reset_index(drop=True)

    pd.testing.assert_frame_equal(read, expected)
