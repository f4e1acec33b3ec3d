"""`shoprank experiment status|report` on a home with hand-made service logs: the report's HTML and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import yaml  # type: ignore[import-untyped]
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.experiments import experiment_report, report_dir, status
from shoprank.settings import Settings

from .test_analysis import START, write_logs


def _settings(tmp_path: Path) -> Settings:
    path = tmp_path / "experiments.yaml"
    experiment = {
        "name": "exp",
        "layer": "model",
        "salt": "s",
        "start": START.isoformat(),
        "arms": [{"name": "control", "share": 0.5}, {"name": "treat", "share": 0.5, "interleave": ["a:1", "b:1"]}],
    }
    path.write_text(yaml.safe_dump({"version": "r1", "experiments": [experiment]}))
    return Settings(home=tmp_path / "home", serving={"experiments_path": path})


def test_report_writes_html_and_json_with_the_decision(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_logs(settings.serving_logs_dir, settings.raw_dir / "events")
    result = experiment_report(settings, START.date())
    page = (report_dir(settings) / "index.html").read_text()
    assert result["report"].endswith(f"{START.date()}.html") and "exp" in result["decisions"]
    assert "SRM" in page and "ctr" in page and "Interleaving: 2 requests, A wins 1, B wins 1" in page
    saved = json.loads((report_dir(settings) / f"{START.date()}.json").read_text())
    (exp,) = saved["experiments"]
    assert exp["analysis"]["arms"] == {"control": 2, "treat": 2} and exp["users_in_several_arms"] == 1
    assert {row["arm"] for row in exp["guardrails"]} == {"control", "treat"}


def test_status_lists_the_declared_experiments(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (experiment,) = status(settings, START)["experiments"]
    assert experiment["running"] and [a["name"] for a in experiment["arms"]] == ["control", "treat"]


def test_cli_status_refuses_a_bad_file_naming_the_field(tmp_path: Path, monkeypatch) -> None:
    from shoprank.settings import get_settings

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "version": "x",
                "experiments": [
                    {"name": "e", "salt": "s", "arms": [{"name": "a", "share": 0.6}, {"name": "b", "share": 0.6}]}
                ],
            }
        )
    )
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOPRANK_SERVING__EXPERIMENTS_PATH", str(bad))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["experiment", "status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert "experiments.0.arms" in str(result.exception) and "sum to 1.2" in str(result.exception)
