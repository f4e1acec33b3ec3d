"""Progress on long CLI steps: a live status line on a terminal only; off a terminal, one log line per stage."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestration.progress import stage
from shoprank.settings import get_settings
from tests.support.processes import free_port


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_stage_and_its_duration():
    screen = _Terminal()
    with stage("train", 9, 12, stream=screen):
        pass
    assert "[9/12] train done in" in screen.getvalue()

    with pytest.raises(ValueError), stage("materialize", stream=screen):
        raise ValueError("boom")
    assert "materialize failed in" in screen.getvalue()


def test_off_a_terminal_nothing_is_drawn_and_one_line_is_logged(caplog: pytest.LogCaptureFixture):
    pipe = io.StringIO()
    with caplog.at_level(logging.INFO, logger="shoprank.progress"), stage("simulate", stream=pipe):
        pass
    assert pipe.getvalue() == ""
    assert [r.getMessage().split(" done in ")[0] for r in caplog.records] == ["stage simulate"]


def test_a_cli_step_off_a_terminal_prints_only_its_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from orchestration.cli import app

    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path))
    monkeypatch.setenv("SHOPRANK_SERVING__PORT", str(free_port()))  # no service there: deploy reports, not fails
    get_settings.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="shoprank.progress"):
            result = CliRunner().invoke(app, ["deploy"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout is the step's JSON and nothing else: no spinner, no ✓ line
    assert "✓" not in result.output and "done in" not in result.output
    stages = [r.getMessage().split(" done in ")[0] for r in caplog.records if r.name == "shoprank.progress"]
    assert stages == ["stage deploy"]
