"""Feast's own web UI over the active profile's registry, on loopback: the command `make feast-ui` /
`shoprank feast-ui` run and the browser test (tests/e2e/test_feast_ui.py) starts, built in one place."""

from __future__ import annotations

import sys
from pathlib import Path

from shoprank.feature_store import feature_store_yaml
from shoprank.settings import Settings

HOST = "127.0.0.1"  # loopback only: the UI has no login of its own


def feast_ui_command(settings: Settings, port: int) -> list[str]:
    """`feast ui` on HOST:``port`` for the profile's feature_store yaml (run it with ``settings.runtime_env()``, which
    names this home's registry and online store)."""
    feast = Path(sys.executable).with_name("feast")
    return [
        str(feast),
        "-c",
        str(settings.feature_repo_dir),
        "-f",
        str(feature_store_yaml(settings)),
        "ui",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
