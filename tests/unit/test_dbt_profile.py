"""dbt_project/profiles.yml's DuckDB target, rendered by dbt itself from the settings' runtime environment: the
options dbt-duckdb opens the warehouse with come from shoprank.settings, and DuckDB takes them."""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path

import duckdb
import pytest
from dbt.config.profile import Profile, read_profile
from dbt.config.renderer import ProfileRenderer
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context

from shoprank.settings import Settings


def _duckdb_config_options(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict:
    for key, value in settings.runtime_env().items():
        monkeypatch.setenv(key, value)
    set_from_args(Namespace(), None)
    set_invocation_context(os.environ)
    raw = read_profile(str(settings.dbt_project_dir))
    profile = Profile.from_raw_profiles(raw, "shoprank", ProfileRenderer({}), target_override="duckdb")
    return dict(profile.credentials.config_options)


@pytest.mark.parametrize("vacuum_tasks", [0, 7])
def test_the_warehouse_opens_with_the_settings_budget_and_vacuum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vacuum_tasks: int
) -> None:
    settings = Settings(home=tmp_path / "home", resources={"memory_budget_gib": 0.5})
    settings.warehouse_vacuum_tasks = vacuum_tasks
    options = _duckdb_config_options(settings, monkeypatch)
    assert options["memory_limit"] == settings.duckdb_memory_limit
    assert options["temp_directory"] == str(settings.duckdb_temp_dir)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), config=options)  # as dbt-duckdb opens it
    assert con.execute("select current_setting('max_vacuum_tasks')").fetchone() == (vacuum_tasks,)
