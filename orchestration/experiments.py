"""Operators' view of the online experiments: their status from serving/experiments.yaml, and the daily report
(quality/experiments/: exposures from the service's logs, tea-tasting statistics) written as HTML and JSON under
``<home>/reports/experiments/``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from quality.experiments.analysis import analyse, interleaving_preference
from quality.experiments.exposure import exposures, guardrails
from quality.experiments.report import ExperimentReport, render
from serving.experiments.config import Experiment, load_experiments
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings

log = logging.getLogger(__name__)


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
        models = exposure_models(con, settings)
        for experiment in config.experiments:
            start, stop = _window(experiment, run_date)
            window = f"{start:%Y-%m-%d %H:%M} to {stop:%Y-%m-%d %H:%M} UTC"
            if stop <= start:
                reports.append(ExperimentReport(experiment.name, window, None, None, _empty(), 0, "not started"))
                continue
            exposed = exposures(
                con,
                settings.serving_logs_dir,
                settings.raw_dir / "events",
                experiment.name,
                start,
                stop,
                pre_days,
                models,
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
    source = f"dbt models {models}.experiment_*" if models else "the service's logs (warehouse models not built)"
    summary = {"run_date": str(run_date), "exposures_from": source, "experiments": [r.to_dict() for r in reports]}
    (folder / f"{run_date}.json").write_text(json.dumps(summary, indent=2, default=str))
    return {
        "report": str(folder / f"{run_date}.html"),
        "exposures_from": source,
        "decisions": {r.name: r.decision() for r in reports},
    }


EXPOSURE_MODELS = ("experiment_exposures", "experiment_outcomes")


def exposure_models(con: Any, settings: Settings) -> str | None:
    """The schema of dbt's exposure and outcome views in the warehouse, attached read-only as ``warehouse``; None
    (the analysis then reads the logs itself) when the warehouse is missing or busy (a dbt build holds DuckDB's
    write lock), a view is missing, or a view was built before the service logged anything (an empty select)."""
    import duckdb

    if not settings.warehouse_path.exists() or settings.dbt_target_name != "duckdb":
        return None
    try:
        con.execute(f"attach '{settings.warehouse_path}' as warehouse (read_only)")
        views = con.execute(
            "select schema_name, view_name, sql from duckdb_views() where database_name = 'warehouse' "
            "and view_name in $names",
            {"names": list(EXPOSURE_MODELS)},
        ).fetchall()
    except duckdb.Error as exc:
        log.warning("experiments: warehouse not readable (%s); reading the service's logs directly", exc)
        return None
    if len(views) != len(EXPOSURE_MODELS) or any("read_parquet" not in sql for _, _, sql in views):
        return None
    return f"warehouse.{views[0][0]}"


def _empty() -> Any:
    import pandas as pd

    return pd.DataFrame()


def decide(settings: Settings, name: str, run_date: date) -> dict[str, Any]:
    """Apply the online decision rule (quality/experiments/decision.py) to ``name``'s analysis in the day's report
    (written first if missing); a winning arm's model goes through the gate's online path into the registry
    (training/gate.py promote_online). The decision, shipped or refused, with its numbers and reasons, is written
    to ``<reports>/experiments/decisions/<day>__<name>.json``."""
    from quality.experiments.decision import decide as apply_rule
    from serving.experiments.lifecycle import ExperimentStateError
    from shoprank.model_bundle import champion_tag
    from training.gate import promote_online

    config = load_experiments(settings.experiments_file, settings.experiments_state_file)
    experiment = next((e for e in config.experiments if e.name == name), None)
    if experiment is None:
        declared = sorted(e.name for e in config.experiments) or "none"
        raise ExperimentStateError(f"unknown experiment {name!r}: {settings.experiments_file} declares {declared}")
    path = report_dir(settings) / f"{run_date}.json"
    if not path.exists():
        experiment_report(settings, run_date)
    recorded = next(r for r in json.loads(path.read_text())["experiments"] if r["name"] == name)
    verdict = apply_rule(recorded, settings.training.gate.online)
    arms = {arm.name: arm for arm in experiment.arms}
    # The arm that won, or (refused) every treatment arm serving its own model: the registry records the refusal.
    arm = arms[verdict.arm] if verdict.arm else None
    tag = arm.model_tag if arm else None
    reasons = list(verdict.reasons)
    if verdict.ship and (arm is None or arm.interleave or tag in (None, CHAMPION, POPULARITY)):
        reasons.append(
            f"refused: arm {verdict.arm} serves no model of its own (rules, interleaving, popularity): nothing to "
            "promote; change the rules file by review, or run an A/B arm with model_tag"
        )
        verdict.ship, verdict.refusal = False, "arm_serves_no_model"
    others = [a.model_tag for a in experiment.arms[1:] if a.model_tag not in (None, CHAMPION, POPULARITY)]
    tags = [tag] if verdict.ship and tag else others
    label = f"experiment-{name}-{run_date}"
    gate = [
        promote_online(
            settings, str(t), verdict.ship, reasons, verdict.numbers, label, experiment.start, verdict.refusal
        )
        for t in tags
    ]
    record = {
        **verdict.to_dict(),
        "reasons": reasons,
        "run_date": str(run_date),
        "file_version": config.version,
        "model_tag": tag if verdict.ship else None,
        "promoted": any(g["promoted"] for g in gate),
        "gate": gate,
        "champion": champion_tag(settings),
    }
    out = report_dir(settings) / "decisions"
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / f"{run_date}__{name}.json"
    record_path.write_text(json.dumps(record, indent=2, default=str))
    return {**record, "decision_path": str(record_path)}


def decide_finished(settings: Settings, run_date: date) -> dict[str, Any]:
    """Decide every experiment that stopped by the end of ``run_date`` and has no decision yet (the
    shoprank_experiments DAG's task after the report). Running experiments are not decided: acting on a daily
    peek at a running test inflates its false-positive rate; `shoprank experiment decide NAME` is the operator's
    explicit call."""
    config = load_experiments(settings.experiments_file, settings.experiments_state_file)
    end = datetime.combine(run_date + timedelta(days=1), time(), tzinfo=UTC)
    decided = report_dir(settings) / "decisions"
    results = {}
    for experiment in config.experiments:
        if experiment.stop is None or experiment.stop > end or experiment.start is None:
            continue
        if any(decided.glob(f"*__{experiment.name}.json")):
            continue
        record = decide(settings, experiment.name, run_date)
        results[experiment.name] = {k: record[k] for k in ("ship", "arm", "promoted", "refusal", "decision_path")}
    return {"run_date": str(run_date), "decided": results}


def decide_day(run_date: date) -> dict[str, Any]:
    """decide_finished with the process's settings (what the DAG task calls)."""
    from shoprank.settings import apply_runtime_env, get_settings

    settings = get_settings()
    apply_runtime_env(settings)
    return decide_finished(settings, run_date)


CHAMPION = "champion"  # an arm's model_tag meaning the serving champion (serving/state.py)
POPULARITY = "popularity"  # an arm's model_tag serving the popularity order (serving/experiments/popularity.py)
