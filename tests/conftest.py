"""Test-wide setup: every run gets its own SHOPRANK_HOME, so tests never touch var/ nor each other's runs.

Sizes are small so the whole pipeline runs in about a minute; tests that need other sizes build their own
Settings. The environment is set in pytest_configure, before any test module imports Airflow (which reads
AIRFLOW_HOME once, at import).
"""

from __future__ import annotations

import os
import tempfile

import pytest

TEST_SIZES = {
    "SHOPRANK_SIMULATOR__DAYS": "5",
    "SHOPRANK_SIMULATOR__USERS": "400",
    "SHOPRANK_SIMULATOR__SELLERS": "30",
    "SHOPRANK_SIMULATOR__ITEMS": "300",
    "SHOPRANK_SIMULATOR__REQUESTS_PER_DAY": "500",
    "SHOPRANK_TRAINING__N_ESTIMATORS": "80",
    # At these sizes the day-over-day PSI of windowed counts reaches ~0.4 (small samples, history still filling
    # its windows); at default sizes it stays under 0.07. Block only on a real shift (tests/data/test_quality_gates).
    "SHOPRANK_QUALITY__DRIFT_BLOCK_PSI": "1.0",
}


def pytest_configure(config: pytest.Config) -> None:
    if "SHOPRANK_TEST_HOME" not in os.environ:
        os.environ["SHOPRANK_TEST_HOME"] = tempfile.mkdtemp(prefix="shoprank-test-")
    os.environ["SHOPRANK_HOME"] = os.environ["SHOPRANK_TEST_HOME"]
    for key, value in TEST_SIZES.items():
        os.environ.setdefault(key, value)

    from shoprank.settings import apply_runtime_env, get_settings

    get_settings.cache_clear()
    apply_runtime_env(get_settings())
