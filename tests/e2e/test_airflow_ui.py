"""An operator's view, in a real headless Chromium: the Airflow UI asks for a login, then shows the daily run."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoprank.settings import Settings
from tests.support.processes import background_server, free_port

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(os.environ.get("SHOPRANK_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))


@pytest.fixture(scope="module")
def airflow_ui(daily_run: Settings) -> Iterator[str]:
    """Airflow's API server (which serves the UI) on a free loopback port, over the e2e run's metadata DB."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with background_server(
        [str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        ready_url=f"{base}/api/v2/version",
        log_path=daily_run.home_dir / "logs" / "api-server.log",
        env={**os.environ, **daily_run.runtime_env(), "AIRFLOW__API__PORT": str(port)},
        ready_timeout=120,
    ):
        yield base


@pytest.fixture()
def browser() -> Iterator:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


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


def _page_text(browser, must_contain: str, timeout: float = 30) -> str:
    """The page's text once it shows ``must_contain`` (the UI renders client-side, after redirects)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = browser.find_element(By.TAG_NAME, "body").text
        except WebDriverException:  # mid-navigation: no body yet, or a stale one
            text = ""
        if must_contain in text:
            break
        time.sleep(0.5)
    return text


def test_the_api_refuses_anonymous_requests(airflow_ui: str):
    assert httpx.get(f"{airflow_ui}/api/v2/dags", timeout=10).status_code == 401


def test_a_wrong_password_does_not_get_in(airflow_ui: str, browser):
    _log_in(browser, airflow_ui, "admin", "not-the-password")
    text = _page_text(browser, "shoprank_daily", timeout=5)
    assert "/auth/login" in browser.current_url
    assert "shoprank_daily" not in text


def test_operator_logs_in_and_sees_the_successful_daily_run(daily_run: Settings, airflow_ui: str, browser):
    from orchestration.airflow_ops import ensure_airflow_login
    from orchestration.pipeline import STEPS

    password = ensure_airflow_login(daily_run)  # the password the login file holds
    _log_in(browser, airflow_ui, daily_run.airflow.admin_user, password)
    text = _page_text(browser, "Success")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "airflow-shoprank-daily-runs.png"))
    assert "shoprank_daily" in text
    assert "Success" in text, text[:2000]
    for step in STEPS:
        assert step.replace("-", "_") in text, f"task {step} not shown"

    # The docs plugin answers the same session (its "ShopRank docs" entry is in the UI's Browse menu): the dashboard.
    from selenium.webdriver.common.by import By

    browser.get(f"{airflow_ui}/shoprank/")
    docs_text = _page_text(browser, "Evaluation reports")
    browser.set_window_size(1400, 2600)  # the whole dashboard in one screenshot
    browser.save_screenshot(str(SCREENSHOT_DIR / "airflow-shoprank-docs.png"))
    assert "evaluation report" in docs_text, docs_text[:2000]
    champion = json.loads((daily_run.home_dir / "models" / "registry.json").read_text())["champion"]
    for element in ("Champion", champion, "Daily runs", "Holdout NDCG@10", "Feature drift", "Quarantine"):
        # (the browser's text follows the CSS: card labels are upper case)
        assert element.lower() in docs_text.lower(), f"{element!r} not on the dashboard: {docs_text[:2000]}"
    run_day = daily_run.default_run_date.isoformat()
    [row] = [r for r in browser.find_elements(By.TAG_NAME, "tr") if r.text.startswith(run_day)]
    badges = [b.text for b in row.find_elements(By.CSS_SELECTOR, ".gate")]
    # raw, marts, drift (a feature may warn without blocking), publish, promotion
    assert badges in (["passed"] * 5, ["passed", "passed", "warned", "passed", "passed"]), row.text
    assert len(browser.find_elements(By.TAG_NAME, "svg")) >= 2  # NDCG and drift charts, drawn server-side


def _bearer(settings: Settings, base: str) -> dict[str, str]:
    from orchestration.airflow_ops import ensure_airflow_login

    credentials = {"username": settings.airflow.admin_user, "password": ensure_airflow_login(settings)}
    response = httpx.post(f"{base}/auth/token", json=credentials, timeout=10)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_docs_plugin_needs_a_login(airflow_ui: str):
    assert httpx.get(f"{airflow_ui}/shoprank/", timeout=10).status_code == 401
    assert httpx.get(f"{airflow_ui}/shoprank/candidates/", timeout=10).status_code == 401


def test_operator_reaches_the_run_s_evaluation_report_and_data_docs(daily_run: Settings, airflow_ui: str):
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
