"""An operator's view, in a real headless Chromium: the Airflow UI asks for a login, then shows the daily run and
the ShopRank dashboard after two days: the daily run's day (every gate passed, the challenger promoted) and the next
day, whose raw events the raw gate quarantined.

The UI serves a copy of the daily run's home with the second day added (tests/e2e/conftest.py's ``two_day_home``),
so the other end-to-end tests keep the one-day home they expect.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from shoprank.settings import Settings
from tests.support.browser import page_text as _page_text
from tests.support.browser import screenshot
from tests.support.processes import background_server, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow_ui(two_day_home: Settings) -> Iterator[str]:
    """Airflow's API server (which serves the UI) on a free loopback port, over the two-day home's metadata DB."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with background_server(
        [str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        ready_url=f"{base}/api/v2/version",
        log_path=two_day_home.home_dir / "logs" / "api-server.log",
        env={**os.environ, **two_day_home.runtime_env(), "AIRFLOW__API__PORT": str(port)},
        ready_timeout=120,
    ):
        yield base


def _log_in(browser, base: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base}/dags/shoprank_daily/runs")
    WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.NAME, "username")))
    assert "/auth/login" in browser.current_url, "the UI must ask for a login"
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password)
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Sign in").click()


def test_the_api_refuses_anonymous_requests(airflow_ui: str):
    assert httpx.get(f"{airflow_ui}/api/v2/dags", timeout=10).status_code == 401


def test_a_wrong_password_does_not_get_in(airflow_ui: str, browser):
    _log_in(browser, airflow_ui, "admin", "not-the-password")
    text = _page_text(browser, "shoprank_daily", timeout=5)
    assert "/auth/login" in browser.current_url
    assert "shoprank_daily" not in text


def test_operator_logs_in_and_sees_the_successful_daily_run(two_day_home: Settings, airflow_ui: str, browser):
    from orchestration.airflow_ops import ensure_airflow_login
    from orchestration.pipeline import STEPS

    password = ensure_airflow_login(two_day_home)  # the password the login file holds
    _log_in(browser, airflow_ui, two_day_home.airflow.admin_user, password)
    text = _page_text(browser, "Success")
    screenshot(browser, "airflow-shoprank-daily-runs")
    assert "shoprank_daily" in text
    assert "Success" in text, text[:2000]
    for step in STEPS:
        assert step.replace("-", "_") in text, f"task {step} not shown"


def test_the_dashboard_shows_the_promoted_day_and_the_refused_day_with_its_reason(
    two_day_home: Settings, airflow_ui: str, browser
):
    """The ShopRank page (its "ShopRank docs" entry is in the UI's Browse menu), after the two days."""
    from selenium.webdriver.common.by import By

    from orchestration.airflow_ops import ensure_airflow_login

    _log_in(browser, airflow_ui, two_day_home.airflow.admin_user, ensure_airflow_login(two_day_home))
    _page_text(browser, "shoprank_daily")  # logged in (the docs plugin answers the same session)
    browser.get(f"{airflow_ui}/shoprank/")
    text = _page_text(browser, "Evaluation reports")
    browser.set_window_size(1400, 3000)  # the whole dashboard in one screenshot
    screenshot(browser, "airflow-shoprank-dashboard-two-days")

    registry = json.loads((two_day_home.home_dir / "models" / "registry.json").read_text())
    card = json.loads(next((two_day_home.home_dir / "models" / "candidates").glob("*/candidate.json")).read_text())
    elements = (
        ("Champion", registry["champion"], card["feature_service"]),  # the champion's card
        ("Daily runs", "Holdout NDCG@10", "Feature drift", "Online metrics", "Experiments", "Quarantine"),
        ("evaluation report",),  # the links to the detailed reports
    )
    for element in (e for group in elements for e in group):
        # (the browser's text follows the CSS: card labels are upper case)
        assert element.lower() in text.lower(), f"{element!r} not on the dashboard: {text[:3000]}"

    rows = {}  # the timeline's rows by day (the first table on the page keyed by a day)
    for row in browser.find_elements(By.TAG_NAME, "tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells:
            rows.setdefault(cells[0].text, row)
    promoted_day, refused_day = two_day_home.default_run_date, two_day_home.default_run_date + timedelta(days=1)

    def gates(day: date) -> list[str]:
        return [badge.text for badge in rows[day.isoformat()].find_elements(By.CSS_SELECTOR, ".gate")]

    # raw, marts, drift (a feature may warn without blocking), publish, promotion
    assert gates(promoted_day) in (["passed"] * 5, ["passed", "passed", "warned", "passed", "passed"])
    assert f"promoted {registry['champion']}" in rows[promoted_day.isoformat()].text
    assert gates(refused_day) == ["quarantined", "not run", "not run", "not run", "not run"]
    refused = rows[refused_day.isoformat()].text
    assert "moved to quarantine" in refused and "expect_column_values_to_be_unique" in refused, refused
    # The quarantine section names the held partition and why.
    assert f"events {refused_day.isoformat()}" in text
    # NDCG, drift and online charts, drawn server-side.
    assert len(browser.find_elements(By.CSS_SELECTOR, "section svg")) >= 3


def _bearer(settings: Settings, base: str) -> dict[str, str]:
    from orchestration.airflow_ops import ensure_airflow_login

    credentials = {"username": settings.airflow.admin_user, "password": ensure_airflow_login(settings)}
    response = httpx.post(f"{base}/auth/token", json=credentials, timeout=10)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_docs_plugin_needs_a_login(airflow_ui: str):
    assert httpx.get(f"{airflow_ui}/shoprank/", timeout=10).status_code == 401
    assert httpx.get(f"{airflow_ui}/shoprank/candidates/", timeout=10).status_code == 401


def test_operator_reaches_the_run_s_evaluation_report_and_data_docs(two_day_home: Settings, airflow_ui: str):
    daily_run = two_day_home  # (a copy of the daily run's home)
    headers = _bearer(daily_run, airflow_ui)
    index = httpx.get(f"{airflow_ui}/shoprank/", headers=headers, timeout=10)
    assert index.status_code == 200
    run_day = sorted(p.name for p in (daily_run.home_dir / "models" / "candidates").iterdir())[-1]
    assert f"candidates/{run_day}/report.html" in index.text
    champion = json.loads((daily_run.home_dir / "models" / "registry.json").read_text())["champion"]
    assert f"champion model: <b>{champion}</b>" in index.text

    report = httpx.get(f"{airflow_ui}/shoprank/candidates/{run_day}/report.html", headers=headers, timeout=10)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.content == (daily_run.home_dir / "models" / "candidates" / run_day / "report.html").read_bytes()
    # The gates ran in the daily run, so GX built its Data Docs site.
    data_docs = httpx.get(f"{airflow_ui}/shoprank/data-docs/", headers=headers, timeout=10)
    assert data_docs.status_code == 200 and "Data Docs" in data_docs.text

    # Only files under the docs roots are served: the Airflow login file sits two folders above the reports.
    escape = httpx.get(
        f"{airflow_ui}/shoprank/candidates/%2E%2E/%2E%2E/airflow/passwords.json", headers=headers, timeout=10
    )
    assert escape.status_code == 404
