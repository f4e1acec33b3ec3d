"""Operators' view of the online experiments: their status from serving/experiments.yaml, and the daily report
(quality/experiments/: exposures from the service's logs, tea-tasting statistics) written as HTML and JSON under
``<home>/reports/experiments/``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from quality.experiments.analysis import analyse, interleaving_preference
from quality.experiments.exposure import exposures, guardrails
from quality.experiments.report import ExperimentReport, render
from serving.experiments.config import Experiment, load_experiments
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings


def status(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """The declared experiments: layer, salt, arms with shares and what they change, window, running now."""
    now = now or datetime.now(UTC)
    config = load_experiments(settings.experiments_file, settings.experiments_state_file)
    return {
        "file": str(settings.experiments_file),
        "version": config.version,
        "experiments": [
            {
                "name": e.name,
                "layer": e.layer,
                "salt": e.salt,
                "start": e.start.isoformat() if e.start else None,
                "stop": e.stop.isoformat() if e.stop else None,
                "running": e.running(now),
                "arms": [arm.model_dump(mode="json", exclude_defaults=True) for arm in e.arms],
            }
            for e in config.experiments
        ],
    }


def start(settings: Settings, name: str, until: datetime | None = None, reload: bool = True) -> dict[str, Any]:
    """Start experiment ``name`` now (recorded in settings.experiments_state_file); ask the service to reload."""
    from serving.experiments.lifecycle import start_experiment

    result = start_experiment(settings.experiments_file, settings.experiments_state_file, name, until=until)
    return {**result, "service": _reload(settings) if reload else "not asked"}


def stop(settings: Settings, name: str, reload: bool = True) -> dict[str, Any]:
    """Stop experiment ``name`` now (its window stays recorded for the report); ask the service to reload."""
    from serving.experiments.lifecycle import stop_experiment

    result = stop_experiment(settings.experiments_file, settings.experiments_state_file, name)
    return {**result, "service": _reload(settings) if reload else "not asked"}


def _reload(settings: Settings) -> Any:
    """The service reads the state on load: the deploy step's reload (no service running: reported, not failed)."""
    from serving.deploy import deploy

    return deploy(settings).get("status")


def report_dir(settings: Settings) -> Path:
    return settings.reports_dir / "experiments"


def _window(experiment: Experiment, run_date: date) -> tuple[datetime, datetime]:
    end = datetime.combine(run_date + timedelta(days=1), time(), tzinfo=UTC)
    start = experiment.start or datetime.combine(run_date, time(), tzinfo=UTC)
    return start, min(experiment.stop, end) if experiment.stop else end


def experiment_report(settings: Settings, run_date: date, pre_days: int = 7) -> dict[str, Any]:
    """Analyse every declared experiment from its start through ``run_date``; write ``<day>.html``, ``<day>.json``
    and ``index.html`` (the latest) under the report folder. Returns the decisions."""
    config = load_experiments(settings.experiments_file, settings.experiments_state_file)
    reports = []
    with duckdb_connect(settings) as con:
        for experiment in config.experiments:
            start, stop = _window(experiment, run_date)
            window = f"{start:%Y-%m-%d %H:%M} to {stop:%Y-%m-%d %H:%M} UTC"
            if stop <= start:
                reports.append(ExperimentReport(experiment.name, window, None, None, _empty(), 0, "not started"))
                continue
            exposed = exposures(
                con, settings.serving_logs_dir, settings.raw_dir / "events", experiment.name, start, stop, pre_days
            )
            shares = {arm.name: arm.share for arm in experiment.arms}
            analysis = analyse(exposed.users, experiment.name, shares) if len(exposed.users) else None
            interleaved = any(arm.interleave for arm in experiment.arms)
            reports.append(
                ExperimentReport(
                    experiment.name,
                    window,
                    analysis,
                    interleaving_preference(exposed.requests["winner"]) if interleaved else None,
                    guardrails(con, settings.serving_logs_dir, experiment.name, start, stop),
                    exposed.users_in_several_arms,
                )
            )
    folder = report_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    page = render(reports, f"ShopRank experiments, {run_date} (serving/experiments.yaml {config.version})")
    (folder / f"{run_date}.html").write_text(page)
    (folder / "index.html").write_text(page)
    summary = {"run_date": str(run_date), "experiments": [r.to_dict() for r in reports]}
    (folder / f"{run_date}.json").write_text(json.dumps(summary, indent=2, default=str))
    return {
        "report": str(folder / f"{run_date}.html"),
        "decisions": {r.name: r.decision() for r in reports},
    }


def _empty() -> Any:
    import pandas as pd

    return pd.DataFrame()
