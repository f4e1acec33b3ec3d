"""A tiny simulated world with published marts and an applied Feast repo, for comparing training-set builders.

Built once per session in its own SHOPRANK_HOME (simulate, dbt build, publish, feast apply): the same steps as the
pipeline up to feast-apply, at sizes that take well under a minute. The environment points at that home while the
world is used (Feast's repo modules read the settings when imported) and is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from shoprank.settings import Settings, apply_runtime_env, get_settings

RUN_DATE = date(2026, 1, 6)
WORLD_SIZES = {
    "SHOPRANK_SIMULATOR__DAYS": "4",
    "SHOPRANK_SIMULATOR__USERS": "300",
    "SHOPRANK_SIMULATOR__ITEMS": "150",
    "SHOPRANK_SIMULATOR__SELLERS": "12",
    "SHOPRANK_SIMULATOR__CATEGORIES": "5",
    "SHOPRANK_SIMULATOR__REQUESTS_PER_DAY": "200",
    "SHOPRANK_SIMULATOR__SLATE_SIZE": "10",
}
# Views whose published rows get gaps (punch_gaps): one with the default 30-day TTL, the one-day user x category view.
GAPPED_VIEWS = ("user_features", "user_category_features")
FEATURE_REPO_MODULES = ("data_sources", "entities", "features", "on_demand", "feature_services", "repo_definitions")


@contextlib.contextmanager
def _fresh_feature_repo_modules() -> Iterator[None]:
    """Import feature_repo/ afresh (its modules read the settings at import), then restore the previous ones."""
    names = ["feature_repo", *(f"feature_repo.{name}" for name in FEATURE_REPO_MODULES)]
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def punch_gaps(marts: Path, views: tuple[str, ...] = GAPPED_VIEWS, share: float = 0.3) -> None:
    """Drop a share of the published rows of the last two snapshots of ``views``: an entity then has no row on a day
    it had one before, so the point-in-time join must take the newest older row within the view's TTL (30 days
    for user_features; none for the one-day user x category view), as Feast does. A complete daily mart never
    needs either rule."""
    import numpy as np

    from shoprank.mart_files import file_day, mart_files, read_mart

    rng = np.random.default_rng(0)
    for view in views:
        files = mart_files(marts, view)  # its file, or a day-partitioned mart's day files
        mart = read_mart(marts, view)
        recent = mart["feature_ts"] >= sorted(mart["feature_ts"].unique())[-2]
        dropped = recent & (rng.random(len(mart)) < share)
        kept = mart[~dropped]
        for path in files:
            path.unlink()  # the published snapshot's own copy (not the build area's)
            rows = kept if path.name == f"{view}.parquet" else kept[kept["dt"] == file_day(path)]
            rows.to_parquet(path, index=False)


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    """Put the process environment, the working directory and the cached settings back as they were."""
    saved, cwd = dict(os.environ), os.getcwd()
    try:
        yield
    finally:
        os.chdir(cwd)  # feast's apply changes directory
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def feast_world_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a home with raw data, published marts and an applied Feast registry, built once per session.

    The environment points at the home only while it is built: a session-long change would leak WORLD_SIZES into
    every later test (the serving tests' synthetic world was then built with 5 categories instead of 12)."""
    from feature_repo.materialize import apply_feature_repo
    from producers.simulator import simulate
    from warehouse.build import build_warehouse
    from warehouse.publish import publish_snapshot

    home: Path = tmp_path_factory.mktemp("feast-world")
    with _environment_restored():
        os.environ.update({**WORLD_SIZES, "SHOPRANK_HOME": str(home)})
        get_settings.cache_clear()
        settings = get_settings()
        apply_runtime_env(settings)
        settings.ensure_dirs()
        simulate(settings, RUN_DATE)
        build_warehouse(settings, RUN_DATE)
        publish_snapshot(settings, RUN_DATE, gates={"test world": "no gates"})
        punch_gaps(settings.marts_export_dir)
        with _fresh_feature_repo_modules():
            apply_feature_repo(settings)
    return settings


@pytest.fixture(scope="module")
def feast_world(feast_world_home: Settings) -> Iterator[Settings]:
    """The world, with the environment (and Feast's repo modules, which read the settings when imported) pointed at
    it for one test module, then restored."""
    with _environment_restored(), _fresh_feature_repo_modules():
        os.environ.update({**WORLD_SIZES, "SHOPRANK_HOME": str(feast_world_home.home_dir)})
        get_settings.cache_clear()
        apply_runtime_env(feast_world_home)
        yield feast_world_home
