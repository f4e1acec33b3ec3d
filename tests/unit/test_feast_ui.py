"""`make feast-ui` / `shoprank feast-ui`: Feast's UI on loopback, for the active profile's feature_store yaml (the
browser test, tests/e2e/test_feast_ui.py, opens what this command serves)."""

from __future__ import annotations

from pathlib import Path

from orchestration.feast_ui import feast_ui_command
from shoprank.settings import Settings


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_feast_ui_listens_on_loopback_for_the_active_profile_s_registry(tmp_path: Path):
    local = feast_ui_command(Settings(home=tmp_path), 8899)
    assert local[-4:] == ["--host", "127.0.0.1", "--port", "8899"] and "ui" in local
    assert Path(_option(local, "-f")).name == "feature_store.yaml"
    assert Path(_option(local, "-c")) == Settings(home=tmp_path).feature_repo_dir

    services = feast_ui_command(Settings(home=tmp_path, profile="services"), 8899)
    assert Path(_option(services, "-f")).name == "feature_store.services.yaml"  # PostgreSQL registry, Redis store
