"""warehouse/dbt_log.py: the build's dbt log, written from dbt's own event messages (dbt's loggers are off)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dbt.adapters.events.types import SQLQuery
from dbt.events.types import MainEncounteredError, MainReportVersion
from dbt_common.events.base_types import msg_from_base_event

from warehouse.dbt_log import DbtEventLog


def _events() -> list:
    return [
        msg_from_base_event(MainReportVersion(version="1.11", log_version=3)),  # info
        msg_from_base_event(SQLQuery(conn_name="model.x", sql="select secret_value_42", node_info={})),  # debug
        msg_from_base_event(MainEncounteredError(exc="boom with secret_value_42")),  # error
    ]


def _log(tmp_path: Path, level: str) -> tuple[str, str]:
    stdout = io.StringIO()
    log = DbtEventLog(tmp_path / "logs", level, stdout=stdout)
    for event in _events():
        log(event)
    log.close()
    path = tmp_path / "logs" / "dbt.log"
    return (path.read_text() if path.exists() else ""), stdout.getvalue()


@pytest.fixture(autouse=True)
def _a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_ENV_SECRET_TOKEN", "secret_value_42")


def test_info_level_writes_results_and_errors_not_statements(tmp_path: Path) -> None:
    text, stdout = _log(tmp_path, "info")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("=" * 30) and lines[0].endswith("=" * 30)  # the invocation's header
    assert any("[info ]" in line and "Running with dbt1.11" in line for line in lines)
    assert any("[error]" in line and "Encountered an error" in line for line in lines)
    assert "select" not in text and "[debug]" not in text
    assert "boom with *****" in stdout and "Running with dbt" not in stdout  # errors only, as --quiet printed
    assert "secret_value_42" not in text + stdout


def test_debug_level_adds_every_statement(tmp_path: Path) -> None:
    text, _ = _log(tmp_path, "debug")
    assert "[debug] [MainThread]: On model.x: select *****" in text


def test_none_writes_no_file_but_still_prints_errors(tmp_path: Path) -> None:
    text, stdout = _log(tmp_path, "none")
    assert text == "" and not (tmp_path / "logs").exists()
    assert "Encountered an error" in stdout
