"""Feast's own web UI, started as `make feast-ui` starts it (orchestration/feast_ui.py: loopback, the active
profile's registry), over the registry the daily run's `feast apply` wrote: a real headless Chromium opens it and
finds every feature view the feature contract (shoprank/feature_contract.py) declares."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from orchestration.feast_ui import feast_ui_command
from shoprank.feature_contract import COMPUTED, views
from shoprank.settings import Settings
from tests.support.browser import page_text, screenshot
from tests.support.processes import background_server, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def feast_ui(daily_run: Settings) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with background_server(
        feast_ui_command(daily_run, port),
        ready_url=f"{base}/health",
        log_path=daily_run.home_dir / "logs" / "feast-ui.log",
        env={**os.environ, **daily_run.runtime_env()},
        cwd=daily_run.project_root,
        ready_timeout=120,
    ):
        yield base


def test_the_feast_ui_lists_every_declared_feature_view(daily_run: Settings, feast_ui: str, browser) -> None:
    projects = httpx.get(f"{feast_ui}/projects-list.json", timeout=10).json()["projects"]
    assert [p["id"] for p in projects] == [daily_run.feast_project]  # this home's registry, one project

    # The stored views and the on-demand ones (computed groups Feast evaluates at request time).
    declared = sorted(views(daily_run.simulator.categories)) + sorted(g.name for g in COMPUTED.values() if g.on_demand)
    browser.get(f"{feast_ui}/p/{daily_run.feast_project}/feature-view")
    text = page_text(browser, declared, timeout=120)  # a React app: ~50 s on a loaded 2-core machine
    screenshot(browser, "feast-ui-feature-views")
    missing = [name for name in declared if name not in text]
    assert not missing, f"feature views not in the Feast UI: {missing}\n{text[:2000]}"
