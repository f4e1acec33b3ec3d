"""
### shoprank_monitor — is the model still fit for today's traffic?

Runs when the daily DAG promotes a champion (the `shoprank://models/champion` asset) and every morning besides.
Three independent reports, written to `<home>/monitoring/<day>/`, reported and never blocking (the blocking drift
gate is the daily DAG's `check_drift`):
- `feature_drift`: PSI of every model feature, the day vs the training window;
- `score_drift`: PSI of the champion's scores, the day vs its own training holdout;
- `online_metrics`: requests, degraded share, latency, exposure (new items, seller Gini) from the service's logs.

Each task calls one function of `orchestration.pipeline.MONITORS`; `shoprank monitor <name> --run-date D` runs it alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from orchestration.alerts import on_task_failure
from orchestration.pipeline import MONITORS, STEP_ASSETS

DEFAULT_ARGS = {
    "owner": "ranking",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=20),
    "on_failure_callback": on_task_failure,
}


def run_monitor(name: str, logical_date=None, triggering_asset_events=None) -> dict:
    """Run one monitor for the day this run is about: the asset event's day, else the day before the run."""
    from orchestration import pipeline

    if logical_date is not None:
        day = pipeline.run_date_for(logical_date)
    else:
        events = [event.extra for events in (triggering_asset_events or {}).values() for event in events]
        day = pipeline.run_date_of_asset_events(events)
    return pipeline.MONITORS[name](day)


@dag(
    dag_id="shoprank_monitor",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
        assets=[Asset(STEP_ASSETS["promote"])],
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["shoprank", "daily", "monitoring"],
)
def shoprank_monitor() -> None:
    for name in MONITORS:
        task(run_monitor, task_id=name.replace("-", "_"), doc_md=MONITORS[name].__doc__)(name=name)


shoprank_monitor()
