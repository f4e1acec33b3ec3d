"""
### shoprank_materialize — keep the online store fresh between daily runs

Every hour, and whenever the daily DAG publishes the marts (the `shoprank://warehouse/marts` asset), loads the
feature rows stamped in the run's interval, plus an overlap for late data, into the Feast online store. It calls
`orchestration.pipeline.materialize_interval`; re-running an interval writes the same values, so clearing a run is safe.

Recover from a failure by clearing the task; the ranking service keeps serving the last materialized values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from orchestration.alerts import on_task_failure
from orchestration.pipeline import STEP_ASSETS

DEFAULT_ARGS = {
    "owner": "ranking",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "execution_timeout": timedelta(minutes=20),
    "on_failure_callback": on_task_failure,
}


@dag(
    dag_id="shoprank_materialize",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"),
        assets=[Asset(STEP_ASSETS["publish"])],
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["shoprank", "hourly", "features"],
)
def shoprank_materialize() -> None:
    @task(outlets=[Asset(STEP_ASSETS["materialize"])])
    def materialize(data_interval_start=None, data_interval_end=None, logical_date=None) -> dict:
        """Materialize [interval start - 1 hour, interval end] (a trigger timetable's interval is one instant)."""
        from orchestration import pipeline

        end = data_interval_end or logical_date
        start = min(data_interval_start or end, end - timedelta(hours=1))
        return pipeline.materialize_interval(start, end)

    materialize()


shoprank_materialize()
