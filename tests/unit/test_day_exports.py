"""PostgreSQL and Spark write one sorted file per mart: split into the day files DuckDB's export writes."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.mart_files import mart_files, read_mart
from warehouse.day_exports import split_into_days

DAY = date(2026, 1, 7)


def test_a_whole_mart_file_is_split_into_its_day_files(tmp_path: Path) -> None:
    days = [DAY - timedelta(days=1)] * 2 + [DAY] * 3
    whole = pa.table({"dt": pa.array(days, pa.date32()), "id": [5, 1, 4, 2, 3]})  # the export's order, kept
    single = tmp_path / "training_examples.parquet"
    pq.write_table(whole, single)
    folder = tmp_path / "training_examples"
    folder.mkdir()
    stale = folder / f"dt={DAY - timedelta(days=5)}.parquet"  # a day the table no longer holds
    pq.write_table(whole.slice(0, 1), stale)

    rows = split_into_days(single, folder)

    assert rows == {DAY - timedelta(days=1): 2, DAY: 3}
    assert not single.exists() and not stale.exists()
    assert [p.name for p in mart_files(tmp_path, "training_examples")] == [
        f"dt={DAY - timedelta(days=1)}.parquet",
        f"dt={DAY}.parquet",
    ]
    assert pq.read_table(folder / f"dt={DAY}.parquet")["id"].to_pylist() == [4, 2, 3]
    assert read_mart(tmp_path, "training_examples").equals(whole.to_pandas())
