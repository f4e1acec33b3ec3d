"""Tests that edit an exported mart: write a frame back in the mart's own layout (shoprank/mart_files.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shoprank.mart_files import DAY_FILE_GLOB, day_file, file_day, mart_files


def write_mart_rows(marts: Path, name: str, frame: pd.DataFrame) -> None:
    """Replace mart ``name`` in ``marts`` by ``frame``'s rows: ``<name>.parquet``, or, when the mart is a folder of day
    files, one file per ``dt`` of ``frame`` (in its order), the other days' files deleted."""
    files = mart_files(marts, name)
    if files == [marts / f"{name}.parquet"]:
        frame.to_parquet(files[0], index=False)
        return
    days = set()
    for day, rows in frame.groupby("dt", sort=True):
        days.add(day)
        rows.to_parquet(day_file(marts, name, day), index=False)
    for path in (marts / name).glob(DAY_FILE_GLOB):
        if file_day(path) not in days:
            path.unlink()
