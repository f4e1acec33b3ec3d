"""The experiments report inside the Airflow UI's ShopRank page, in a real headless Chromium (screenshot saved).

Cheap: no daily run. A fresh home gets Airflow's metadata DB and login (as `make airflow-init`), one declared
experiment with hand-made service logs (tests/experiments/test_analysis.py) and its report (`shoprank experiment
report`); the operator logs in, opens the ShopRank page, follows its experiments link and reads the report.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from shoprank.settings import Settings
from tests.experiments.test_analysis import START, write_logs
from tests.support.processes import background_server, free_port

pytestmark = pytest.mark.e2e

# The same Chromium and output folder as tests/e2e/test_airflow_ui.py (which is being moved to a shared helper).
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(os.environ.get("SHOPRANK_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))


@pytest.fixture()
def browser() -> Iterator:
    import tempfile

    from selenium import webdriver

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    assert not missing, f"{missing} not installed: run `make system-deps`"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _page_text(browser, must_contain: str, timeout: float = 30) -> str:
    """The page's text once it shows ``must_contain`` (the UI renders client-side, after redirects)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline and must_contain not in text:
        try:
            text = browser.find_element(By.TAG_NAME, "body").text
        except WebDriverException:  # mid-navigation
            text = ""
        time.sleep(0.5)
    return text


def _log_in(browser, base: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base}/dags")  # the UI redirects to its login page (the docs plugin itself answers 401)
    WebDriverWait(browser, 60).until(expected_conditions.presence_of_element_located((By.NAME, "username")))
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password)
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Sign in").click()


@pytest.fixture(scope="module")
def experiments_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from orchestration.airflow_ops import init_airflow
    from orchestration.experiments import experiment_report

    root = tmp_path_factory.mktemp("experiments-ui")
    path = root / "experiments.yaml"
    experiment = {
        "name": "exp",
        "layer": "model",
        "salt": "s",
        "start": START.isoformat(),
        "stop": (START.replace(day=START.day + 7)).isoformat(),
        "arms": [{"name": "control", "share": 0.5}, {"name": "treat", "share": 0.5, "interleave": ["a:1", "b:1"]}],
    }
    path.write_text(yaml.safe_dump({"version": "ui-1", "experiments": [experiment]}))
    settings = Settings(home=root / "home", serving={"experiments_path": path})
    write_logs(settings.serving_logs_dir, settings.raw_dir / "events")
    experiment_report(settings, START.date())
    init_airflow(settings)
    return settings


@pytest.fixture(scope="module")
def ui(experiments_home: Settings) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **experiments_home.runtime_env(),
        "SHOPRANK_SERVING__EXPERIMENTS_PATH": str(experiments_home.experiments_file),
        "AIRFLOW__API__PORT": str(port),
    }
    with background_server(
        [str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        ready_url=f"{base}/api/v2/version",
        log_path=experiments_home.home_dir / "logs" / "api-server.log",
        env=env,
        ready_timeout=180,
    ):
        yield base


def test_the_experiments_report_renders_inside_the_airflow_ui(experiments_home: Settings, ui: str, browser) -> None:
    from selenium.webdriver.common.by import By

    from orchestration.airflow_ops import ensure_airflow_login

    _log_in(browser, ui, experiments_home.airflow.admin_user, ensure_airflow_login(experiments_home))
    _page_text(browser, "Dags")  # the UI after the login
    browser.get(f"{ui}/shoprank/")
    page = _page_text(browser, "Experiments report of")
    assert "exp" in page and "control 50%, treat 50%" in page, page[:3000]
    browser.find_element(By.PARTIAL_LINK_TEXT, "Experiments report of").click()
    report = _page_text(browser, "Decision:")
    browser.set_window_size(1400, 1800)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "airflow-shoprank-experiments-report.png"))
    assert browser.current_url.endswith(f"/shoprank/experiments/{START.date()}.html")
    assert f"ShopRank experiments, {START.date()}" in report
    for shown in ("SRM: ok", "Interleaving: 2 requests, A wins 1, B wins 1", "Guardrails", "gmv_per_user"):
        assert shown in report, f"{shown!r} not in the rendered report: {report[:3000]}"
    assert len(browser.find_elements(By.TAG_NAME, "table")) >= 2  # effects and guardrails
