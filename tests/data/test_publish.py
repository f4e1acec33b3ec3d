"""Only gated marts are published: a build that fails dbt's tests leaves the published snapshot untouched.

A copy of the session's tiny warehouse (raw data, DuckDB, the marts' build) is gated and published for the run's
day with the real gates; then its raw events are inflated (about 1.9x: most rows re-emitted under new event ids,
the shape of a producer that retried a whole batch) and the warehouse rebuilt. dbt's tests fail, and the
published marts, which Feast, training and serving read, must be the same bytes behind the same pointer.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from producers.simulator import SCHEMAS, partition_path
from quality.drift import check_drift
from quality.validate import validate_marts
from shoprank.settings import Settings, get_settings
from warehouse.build import WarehouseBuildError, build_warehouse
from warehouse.publish import PublishError, publish, read_manifest

from .conftest import RUN_DATE, tiny_settings

# The tiny world is lumpy (clean day-over-day PSI up to ~1.4, see test_quality_gates.py): block only beyond it.
TINY_DRIFT_BLOCK = 2.0


@pytest.fixture
def published_home(warehouse: dict, tmp_path: Path) -> Iterator[Settings]:
    """A copy of the tiny warehouse whose clean build passed both gates and is published."""
    source: Settings = warehouse["settings"]
    home = tmp_path / "home"
    shutil.copytree(source.raw_dir, home / "raw")
    shutil.copytree(source.warehouse_path.parent, home / "warehouse", symlinks=True)
    settings = tiny_settings(home)
    settings.quality.drift_block_psi = TINY_DRIFT_BLOCK
    settings.quality.build_data_docs = False
    saved = dict(os.environ)  # build_warehouse exports this home's paths into the process
    try:
        settings.ensure_dirs()
        assert validate_marts(settings, RUN_DATE)["success"] and check_drift(settings, RUN_DATE)["success"]
        publish(settings, RUN_DATE)
        yield settings
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def published_bytes(settings: Settings) -> dict[str, bytes]:
    snapshot = settings.marts_export_dir
    return {p.relative_to(snapshot).as_posix(): p.read_bytes() for p in sorted(snapshot.rglob("*")) if p.is_file()}


def inflate_events(settings: Settings, share: float = 0.9) -> None:
    """Re-emit ``share`` of the run day's events under new event ids (unique ids: the raw id check cannot tell)."""
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    events = pd.read_parquet(path)
    copies = events.sample(frac=share, random_state=0).assign(event_id=lambda f: f["event_id"].astype(str) + "-r")
    inflated = pd.concat([events, copies], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(inflated, schema=SCHEMAS["events"], preserve_index=False), path)


def test_a_build_failing_dbt_tests_leaves_the_published_snapshot_unchanged(published_home: Settings) -> None:
    settings = published_home
    pointer = os.readlink(settings.marts_export_dir)
    before = published_bytes(settings)
    built_before = (settings.marts_build_dir / "item_features.parquet").read_bytes()

    inflate_events(settings)
    with pytest.raises(WarehouseBuildError) as error:
        build_warehouse(settings, RUN_DATE)
    assert error.value.failures, "dbt reported no failed node"

    # dbt exported the inflated marts before its tests ran: into the build area, which no reader reads.
    assert (settings.marts_build_dir / "item_features.parquet").read_bytes() != built_before
    assert os.readlink(settings.marts_export_dir) == pointer
    assert published_bytes(settings) == before
    manifest = read_manifest(settings.marts_export_dir.resolve())
    assert manifest["run_date"] == RUN_DATE.isoformat()
    assert all(gate["success"] for gate in manifest["gates"].values())
    # Publishing now (an operator running the step by hand) refuses: the gates judged another build.
    with pytest.raises(PublishError, match="the build changed since validate_marts judged it"):
        publish(settings, RUN_DATE)
    assert os.readlink(settings.marts_export_dir) == pointer and published_bytes(settings) == before
