"""dbt's experiment_exposures and experiment_outcomes (real dbt build on DuckDB over hand-made service logs) give the
analysis the same per-user table and interleaving credit as its SQL over the logs, and the report reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml  # type: ignore[import-untyped]

from orchestration.experiments import experiment_report, exposure_models, report_dir
from quality.experiments.exposure import exposures
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings
from warehouse.build import build_warehouse

from .test_analysis import START, STOP, write_logs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("exposure-models")
    path = root / "experiments.yaml"
    experiment = {"name": "exp", "layer": "model", "salt": "s", "start": START.isoformat(), "stop": STOP.isoformat()}
    arms = [{"name": "control", "share": 0.5}, {"name": "treat", "share": 0.5, "interleave": ["a:1", "b:1"]}]
    path.write_text(yaml.safe_dump({"version": "m1", "experiments": [{**experiment, "arms": arms}]}))
    settings = Settings(home=root / "home", serving={"experiments_path": path})
    write_logs(settings.serving_logs_dir, settings.raw_dir / "events")
    result = build_warehouse(settings, START.date(), select="experiment_exposures experiment_outcomes")
    assert result["statuses"] == {"success": 2, "pass": 3}, result  # both views, their data tests
    return settings


def test_the_dbt_views_give_the_same_exposures_as_the_logs_sql(built: Settings) -> None:
    with duckdb_connect(built) as con:
        models = exposure_models(con, built)
        assert models is not None
        args = (con, built.serving_logs_dir, built.raw_dir / "events", "exp", START, STOP)
        from_models, from_logs = exposures(*args, models=models), exposures(*args)
        exposed = con.execute(f"select request_id, experiment, arm from {models}.experiment_exposures").df()

    def ordered(frame: pd.DataFrame, key: str) -> pd.DataFrame:
        return frame.sort_values(key).reset_index(drop=True)

    pd.testing.assert_frame_equal(ordered(from_models.users, "user_id"), ordered(from_logs.users, "user_id"))
    pd.testing.assert_frame_equal(
        ordered(from_models.requests, "request_id"), ordered(from_logs.requests, "request_id")
    )
    assert from_models.users_in_several_arms == from_logs.users_in_several_arms == 1
    # the hand-made answer: u3 clicked twice and bought for 30 in r4; u5 (both arms) left out
    users = from_models.users.set_index("user_id")
    assert users.loc["u3", ["clicks", "purchases", "gmv"]].tolist() == [2, 1, 30.0]
    assert "u5" not in users.index and len(exposed) == 8


def test_the_report_reads_the_warehouse_models(built: Settings) -> None:
    result = experiment_report(built, START.date())
    assert result["exposures_from"].startswith("dbt models warehouse.")
    saved = json.loads((report_dir(built) / f"{START.date()}.json").read_text())
    (exp,) = saved["experiments"]
    assert exp["analysis"]["arms"] == {"control": 2, "treat": 2} and exp["users_in_several_arms"] == 1


def test_a_view_built_before_any_log_is_not_trusted(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    build_warehouse(settings, START.date(), select="experiment_exposures experiment_outcomes")
    with duckdb_connect(settings) as con:
        assert exposure_models(con, settings) is None  # empty selects: the analysis reads the logs itself
