"""The hourly materialization DAG, run for real after the daily one: it succeeds and changes no served value."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from shoprank.settings import Settings
from tests.e2e.conftest import _airflow

pytestmark = pytest.mark.e2e


def _online_item_values(settings: Settings, item_ids: list[str]) -> pd.DataFrame:
    from shoprank.feature_store import get_feature_store

    store = get_feature_store(settings)
    return store.get_online_features(
        features=["item_features:item_clicks_7d", "item_features:item_ctr_7d"],
        entity_rows=[{"item_id": item} for item in item_ids],
    ).to_df()


def test_hourly_materialization_of_the_runs_end_is_idempotent(daily_run: Settings):
    items = pd.read_parquet(daily_run.marts_export_dir / "item_features.parquet", columns=["item_id"])
    sample = sorted(items["item_id"].unique())[:25]
    before = _online_item_values(daily_run, sample)

    # The hour that ends at the newest feature snapshot (the end of the run's day).
    logical = f"{daily_run.default_run_date + timedelta(days=1)}T00:00:00+00:00"
    run = _airflow(daily_run, "dags", "test", "shoprank_materialize", logical, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    state = _airflow(daily_run, "dags", "state", "shoprank_materialize", logical, timeout=120)
    assert state.stdout.strip().splitlines()[-1] == "success", state.stdout + state.stderr

    after = _online_item_values(daily_run, sample)
    pd.testing.assert_frame_equal(before, after)
    assert after["item_clicks_7d"].notna().all()
