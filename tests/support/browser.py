"""A real headless Chromium (selenium + the system's chromedriver) for the UI tests, and where they save screenshots.

Screenshots go to $SHOPRANK_TEST_OUTPUT, or test-output/ at the repository root (ignored by git; CI keeps it as an
artifact).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(os.environ.get("SHOPRANK_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by selenium, in a throwaway profile; always quit."""
    from selenium import webdriver

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed: run `make system-deps` (apt-get, first run only)")

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
        f"--window-size={width},{height}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(browser: Any, must_contain: str | list[str], timeout: float = 30) -> str:
    """The page's text once it shows ``must_contain`` (every string of it, when a list): the UIs render client-side,
    after redirects, so the text is polled. Returns the last text seen (the caller asserts on it)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    wanted = [must_contain] if isinstance(must_contain, str) else must_contain
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = browser.find_element(By.TAG_NAME, "body").text
        except WebDriverException:  # mid-navigation: no body yet, or a stale one
            text = ""
        if all(w in text for w in wanted):
            break
        time.sleep(0.5)
    return text


def screenshot(browser: Any, name: str) -> Path:
    """Save the browser's viewport as ``<SCREENSHOT_DIR>/<name>.png``; returns the path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    browser.save_screenshot(str(path))
    return path
