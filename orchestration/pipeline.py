"""The daily pipeline's steps, one function each: the Airflow tasks, the CLI and `make` all call these.

Every step takes the run's day (the day whose data it processes), reads settings itself, is idempotent on that
day, and returns a small JSON-able summary (it becomes the task's XCom).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from shoprank.settings import Settings, apply_runtime_env, get_settings

log = logging.getLogger(__name__)


def run_date_for(logical_date: datetime | date | str | None, settings: Settings | None = None) -> date:
    """The day a DAG run processes: the complete day before its logical date.

    Airflow 3 stamps a daily run with the moment it is due (00:00 of day D), when day D-1 has just ended.
    """
    if logical_date is None:
        return (settings or get_settings()).default_run_date
    if isinstance(logical_date, str):
        logical_date = datetime.fromisoformat(logical_date)
    day = logical_date.date() if isinstance(logical_date, datetime) else logical_date
    return day - timedelta(days=1)


def run_date_of_asset_events(events: list[dict[str, Any]], settings: Settings | None = None) -> date:
    """The day an asset-triggered run should process: the newest ``run_date`` its triggering events carry.

    Airflow 3 gives asset-triggered runs no logical date; the daily DAG stamps each asset event it emits with the
    day it processed (see dags/shoprank_daily.py), and the consumer DAG reads it back here.
    """
    days = [date.fromisoformat(str(e["run_date"])) for e in events if e.get("run_date")]
    return max(days) if days else (settings or get_settings()).default_run_date


def _settings() -> Settings:
    settings = get_settings()
    settings.ensure_dirs()
    apply_runtime_env(settings)
    return settings


def simulate(run_date: date) -> dict[str, Any]:
    """Write the simulated raw partitions for the run's window (raw data contract)."""
    from producers.simulator import simulate as run_simulator

    return run_simulator(_settings(), run_date)


def validate_raw(run_date: date) -> dict[str, Any]:
    """Great Expectations suites over the run's raw partitions; failing partitions go to quarantine, the run stops."""
    from quality.raw import validate_raw as run_suites

    return run_suites(_settings(), run_date)


def build_warehouse(run_date: date, full_refresh: bool = False, select: str | None = None) -> dict[str, Any]:
    """dbt build: staging, marts and their tests on the warehouse; the marts' parquet goes to the build area.

    ``full_refresh`` rebuilds the marts from all raw history (needed once after a mart's column set changes);
    ``select`` limits the build to dbt's selection (default: every node)."""
    from warehouse.build import build_warehouse as run_dbt

    return run_dbt(_settings(), run_date, select=select, full_refresh=full_refresh)


def validate_marts(run_date: date) -> dict[str, Any]:
    """Great Expectations suites over the built marts (not yet published); fails on any failed expectation."""
    from quality.validate import validate_marts as run_suites

    return run_suites(_settings(), run_date)


def feast_apply(run_date: date) -> dict[str, Any]:
    """feast apply: register the feature repo's entities, views and services."""
    from feature_repo.materialize import apply_feature_repo

    return apply_feature_repo(_settings())


def materialize(run_date: date) -> dict[str, Any]:
    """Load the run's feature window into the online store."""
    from feature_repo.materialize import materialize_for_run

    return materialize_for_run(_settings(), run_date)


def check_drift(run_date: date) -> dict[str, Any]:
    """PSI of every model feature, run's day vs training window; a blocking drift stops the run before publishing."""
    from quality.drift import check_drift as run_check

    return run_check(_settings(), run_date)


def publish(run_date: date) -> dict[str, Any]:
    """Publish the gated build to every reader (an atomic snapshot swap); refuses a build the gates did not pass."""
    from warehouse.publish import publish as publish_build

    return publish_build(_settings(), run_date)


def build_retrieval(run_date: date) -> dict[str, Any]:
    """Build the recall indexes from the published snapshot: bm25s over titles, item2vec + faiss over clicks."""
    from retrieval.build import build_retrieval as build_indexes

    return build_indexes(_settings(), run_date)


def train(run_date: date) -> dict[str, Any]:
    """Train the ranker on a point-in-time training set; write a candidate with holdout metrics."""
    from training.train import train_ranker

    return train_ranker(_settings(), run_date)


def train_preranker(run_date: date) -> dict[str, Any]:
    """Train the funnel's pre-ranker on the same point-in-time data; publish it with its card for serving."""
    from training.preranker import train_preranker as fit_preranker

    settings = _settings()
    if not settings.recall.prerank:
        return {"skipped": "recall.prerank is off (SHOPRANK_RECALL__PRERANK=true turns the funnel on)"}
    return fit_preranker(settings, run_date)


def train_cold_start_prior(run_date: date) -> dict[str, Any]:
    """Train the learned cold-start prior (a new item's CTR/CVR from its content) for the exploration and
    seller-floor rules; skipped while serving's rules use neither."""
    from serving.rules.config import load_rules
    from training.cold_start_prior import train_cold_start_prior as fit_prior

    settings = _settings()
    rules = load_rules(settings.rules_file)
    if not (rules.learned_exploration.enabled or rules.seller_floor.enabled):
        return {"skipped": f"learned_exploration and seller_floor are off in {settings.rules_file}"}
    return fit_prior(settings, run_date)


def register(run_date: date) -> dict[str, Any]:
    """Save the run's candidate model to the model store, as a challenger."""
    from training.registry import register_candidate
    from training.train import candidate_dir

    settings = _settings()
    return register_candidate(settings, candidate_dir(settings, run_date))


def promote(run_date: date) -> dict[str, Any]:
    """Champion/challenger gate: promote the run's challenger only if it beats the champion on the same holdout."""
    from training.gate import promote as run_gate
    from training.registry import registered_tag
    from training.train import candidate_dir

    settings = _settings()
    return run_gate(settings, registered_tag(candidate_dir(settings, run_date)), label=run_date.isoformat())


def deploy(run_date: date) -> dict[str, Any]:
    """Ask the running ranking service to reload the champion (POST /admin/reload); no service: reported, not failed."""
    from serving.deploy import deploy as reload_service

    return reload_service(_settings())


# In dependency order; `shoprank run` and the DAG follow it. dbt writes the marts to a build area; the gates judge
# it and `publish` hands it to every reader (Feast, training, serving) only after the last one.
STEPS: dict[str, Callable[[date], dict[str, Any]]] = {
    "simulate": simulate,
    "validate-raw": validate_raw,
    "build-warehouse": build_warehouse,
    "validate-marts": validate_marts,
    "check-drift": check_drift,
    "publish": publish,
    "build-retrieval": build_retrieval,
    "feast-apply": feast_apply,
    "materialize": materialize,
    "train": train,
    "train-preranker": train_preranker,
    "train-cold-start-prior": train_cold_start_prior,
    "register": register,
    "promote": promote,
    "deploy": deploy,
}


# Airflow assets the daily DAG's steps update; other DAGs are scheduled on them (not on fixed times).
STEP_ASSETS = {
    "publish": "shoprank://warehouse/marts",
    "materialize": "shoprank://feature-store/online",
    "promote": "shoprank://models/champion",
}


def materialize_interval(start: datetime, end: datetime) -> dict[str, Any]:
    """Materialize the features stamped in a data interval (plus the overlap): the hourly DAG's one task."""
    from feature_repo.materialize import materialize as materialize_window

    return materialize_window(_settings(), start, end)


def monitor_feature_drift(run_date: date) -> dict[str, Any]:
    """Feature drift report for the day (reported, never blocking)."""
    from quality.monitoring import feature_drift

    return feature_drift(_settings(), run_date)


def monitor_score_drift(run_date: date) -> dict[str, Any]:
    """Drift of the champion's scores on the day vs its training holdout."""
    from quality.monitoring import score_drift

    return score_drift(_settings(), run_date)


def monitor_online_metrics(run_date: date) -> dict[str, Any]:
    """Requests, degradation, latency and exposure from the service's logs for the day."""
    from quality.monitoring import online_metrics

    return online_metrics(_settings(), run_date)


MONITORS = {
    "feature-drift": monitor_feature_drift,
    "score-drift": monitor_score_drift,
    "online-metrics": monitor_online_metrics,
}


def experiments_report(run_date: date) -> dict[str, Any]:
    """Analyse every experiment of serving/experiments.yaml through the day; HTML report under the home."""
    from orchestration.experiments import experiment_report

    return experiment_report(_settings(), run_date)


def run_all(run_date: date) -> dict[str, Any]:
    """Run every step in order, outside Airflow (the DAG runs the same functions as tasks)."""
    results = {}
    for name, step in STEPS.items():
        log.info("step %s (%s)", name, run_date)
        results[name] = step(run_date)
    return results
