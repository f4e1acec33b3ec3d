"""`shoprank experiment start|stop`: recorded times override the declared window, validated, refused with exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestration.cli import app
from serving.experiments.config import load_experiments
from serving.experiments.lifecycle import ExperimentStateError, start_experiment, stop_experiment
from shoprank.settings import get_settings

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def _experiment(name: str, salt: str, **window: str) -> dict:
    arms = [{"name": "control", "share": 0.5}, {"name": "no-rules", "share": 0.5, "rules": False}]
    return {"name": name, "layer": "rules", "salt": salt, "arms": arms, **window}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    declared = {
        "version": "t1",
        "experiments": [
            _experiment("past", "s1", stop="2026-01-01T00:00:00Z"),
            _experiment("later", "s2", start="2027-03-01T00:00:00Z", stop="2027-04-01T00:00:00Z"),
        ],
    }
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(declared))
    return path, tmp_path / "home" / "experiments" / "state.json"


def test_start_then_stop_records_the_window_and_the_loaded_file_uses_it(files: tuple[Path, Path]) -> None:
    path, state = files
    until = NOW + timedelta(days=14)
    started = start_experiment(path, state, "past", now=NOW, until=until)
    assert started["start"] == NOW.isoformat() and started["stop"] == until.isoformat()
    experiment = load_experiments(path, state).experiments[0]
    assert experiment.running(NOW + timedelta(hours=1))
    assert not load_experiments(path).experiments[0].running(NOW + timedelta(hours=1))  # the file itself unchanged

    stop_experiment(path, state, "past", now=NOW + timedelta(days=2))
    experiment = load_experiments(path, state).experiments[0]
    assert experiment.start == NOW and experiment.stop == NOW + timedelta(days=2)
    assert not experiment.running(NOW + timedelta(days=3))
    events = json.loads(state.read_text())["events"]
    assert [(e["action"], e["experiment"], e["file_version"]) for e in events] == [
        ("start", "past", "t1"),
        ("stop", "past", "t1"),
    ]


@pytest.mark.parametrize(
    ("action", "name", "message"),
    [
        ("start", "nope", "unknown experiment 'nope'"),
        ("stop", "past", "past is not running"),
        # open-ended, it would run alongside 'later' in the same layer: refused naming both
        ("start", "past", "past and later share layer rules"),
    ],
)
def test_changes_that_cannot_apply_are_refused_and_nothing_is_written(
    files: tuple[Path, Path], action: str, name: str, message: str
) -> None:
    path, state = files
    change = start_experiment if action == "start" else stop_experiment
    with pytest.raises(ExperimentStateError, match=message):
        change(path, state, name, now=NOW)
    assert not state.exists() or json.loads(state.read_text())["events"] == []


def test_starting_a_running_experiment_is_refused(files: tuple[Path, Path]) -> None:
    path, state = files
    start_experiment(path, state, "past", now=NOW, until=NOW + timedelta(days=1))
    with pytest.raises(ExperimentStateError, match="already running"):
        start_experiment(path, state, "past", now=NOW + timedelta(hours=1))


@pytest.fixture
def cli_env(files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    path, state = files
    monkeypatch.setenv("SHOPRANK_HOME", str(state.parent.parent))
    monkeypatch.setenv("SHOPRANK_SERVING__EXPERIMENTS_PATH", str(path))
    get_settings.cache_clear()
    yield files
    get_settings.cache_clear()


def test_cli_start_stop_exit_codes(cli_env: tuple[Path, Path]) -> None:
    path, state = cli_env
    unknown = CliRunner().invoke(app, ["experiment", "start", "nope", "--no-reload"])
    assert unknown.exit_code == 2 and "unknown experiment 'nope'" in unknown.output
    until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    started = CliRunner().invoke(app, ["experiment", "start", "past", "--no-reload", "--until", until])
    assert started.exit_code == 0, started.output
    assert json.loads(state.read_text())["experiments"]["past"]["stop"] == until
    assert CliRunner().invoke(app, ["experiment", "stop", "past", "--no-reload"]).exit_code == 0
    again = CliRunner().invoke(app, ["experiment", "stop", "past", "--no-reload"])
    assert again.exit_code == 2 and "not running" in again.output
