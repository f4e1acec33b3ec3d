"""A tiny simulated warehouse, built once per session: simulate, then dbt build, in its own SHOPRANK_HOME."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from producers.simulator import simulate
from shoprank.settings import Settings, SimulatorSettings, get_settings
from warehouse.build import build_warehouse

RUN_DATE = date(2026, 1, 7)
TINY = SimulatorSettings(days=4, users=300, items=150, sellers=12, categories=5, requests_per_day=300, slate_size=10)


def tiny_settings(home: Path) -> Settings:
    return Settings(home=home, simulator=TINY)


@pytest.fixture(scope="session")
def restore_env() -> Iterator[None]:
    """build_warehouse exports its paths into os.environ: put the suite's environment back afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory, restore_env: None) -> dict:
    settings = tiny_settings(tmp_path_factory.mktemp("warehouse-home"))
    simulation = simulate(settings, RUN_DATE)
    build = build_warehouse(settings, RUN_DATE)
    return {"settings": settings, "simulation": simulation, "build": build}


@pytest.fixture
def copied_home(warehouse: dict, tmp_path: Path) -> Settings:
    """A writable copy of the built home (raw data and the marts' build) for tests that corrupt something."""
    source: Settings = warehouse["settings"]
    home = tmp_path / "home"
    shutil.copytree(source.raw_dir, home / "raw")
    settings = tiny_settings(home)
    shutil.copytree(source.marts_build_dir, settings.marts_build_dir)
    return settings
