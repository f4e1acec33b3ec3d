"""An operator's view, in a real headless Chromium: the Airflow UI asks for a login, then shows the daily run."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoprank.processes import background_server, free_port
from shoprank.settings import Settings

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
    from shoprank.ops import ensure_airflow_login
    from shoprank.pipeline import STEPS

    password = ensure_airflow_login(daily_run)  # the password the login file holds
    _log_in(browser, airflow_ui, daily_run.airflow.admin_user, password)
    text = _page_text(browser, "Success")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "airflow-shoprank-daily-runs.png"))
    assert "shoprank_daily" in text
    assert "Success" in text, text[:2000]
    for step in STEPS:
        assert step.replace("-", "_") in text, f"task {step} not shown"
