"""The item cache reads an item-side view whose Feast source is a day-partitioned mart's folder (shoprank/mart_files.py)
as it read the single file, and notices a day file rewritten in place (the folder's own mtime does not move)."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from serving.item_cache import ItemView, newest_mtime, read_view
from shoprank.mart_files import day_file

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(3)]


def _mart() -> pd.DataFrame:
    rows = [
        {"item_id": f"i{n}", "feature_ts": pd.Timestamp(day, tz="UTC"), "item_clicks_1d": 10 * k + n, "dt": day}
        for k, day in enumerate(DAYS)
        for n in range(3)
    ]
    return pd.DataFrame(rows).astype({"feature_ts": "datetime64[us, UTC]"})


def test_a_folder_view_reads_as_its_single_file(tmp_path: Path) -> None:
    whole, days = tmp_path / "whole", tmp_path / "days"
    whole.mkdir()
    mart = _mart()
    mart.to_parquet(whole / "item_window_features.parquet", index=False)
    (days / "item_window_features").mkdir(parents=True)
    for day in reversed(DAYS):  # written out of order: read in day order all the same
        mart[mart["dt"] == day].to_parquet(day_file(days, "item_window_features", day), index=False)
    columns = ["item_id", "feature_ts", "item_clicks_1d"]

    single = read_view(whole / "item_window_features.parquet", columns)
    folder = read_view(days / "item_window_features", columns)

    pd.testing.assert_frame_equal(folder, single)
    assert folder["item_clicks_1d"].tolist() == mart["item_clicks_1d"].tolist()
    view = ItemView("item_window_features", days / "item_window_features", "item_id", ("item_clicks_1d",))
    assert view.path.is_dir()


def test_newest_mtime_sees_a_day_file_rewritten_in_place(tmp_path: Path) -> None:
    mart = _mart()
    folder = tmp_path / "item_window_features"
    folder.mkdir()
    for day in DAYS:
        path = day_file(tmp_path, "item_window_features", day)
        mart[mart["dt"] == day].to_parquet(path, index=False)
        os.utime(path, (1_000, 1_000))
    os.utime(folder, (1_000, 1_000))
    assert newest_mtime([folder]) == 1_000
    os.utime(day_file(tmp_path, "item_window_features", DAYS[1]), (2_000, 2_000))
    assert newest_mtime([folder]) == 2_000
    assert folder.stat().st_mtime == 1_000  # the folder alone would not have told
