"""Settings: environment-driven, every path derived from one home, no side effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.pipeline import run_date_for
from shoprank.settings import Settings


def test_environment_overrides_nested_fields_and_paths_follow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOPRANK_SIMULATOR__USERS", "1234")
    settings = Settings()
    assert settings.simulator.users == 1234
    for path in (settings.raw_dir, settings.warehouse_path, settings.feast_online_path, settings.model_store_dir):
        assert path.is_relative_to(tmp_path / "home")
    assert not (tmp_path / "home").exists(), "building settings must not touch the disk"
    env = settings.runtime_env()
    assert env["BENTOML_HOME"] == str(settings.model_store_dir)
    assert env["AIRFLOW_HOME"] == str(settings.airflow_home)
    assert env["FEAST_USAGE"] == "False"


def test_unknown_profile_is_rejected(monkeypatch):
    monkeypatch.setenv("SHOPRANK_PROFILE", "production")
    with pytest.raises(ValueError, match="profile"):
        Settings()


def test_a_dag_run_processes_the_day_before_its_logical_date():
    assert str(run_date_for("2026-01-08T00:00:00+00:00")) == "2026-01-07"
    assert Path(Settings().dags_dir).name == "dags"
