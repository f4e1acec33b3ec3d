"""
### shoprank_experiments — which ranker wins online?

Every morning, analyses every experiment of `serving/experiments.yaml` from its start through yesterday: exposures
and outcomes from the ranking service's request and events logs, per arm CTR, purchases per request and GMV per
user against the control (tea-tasting, CUPED on the pre-period, 95% intervals, MDE at 80% power), the sample-ratio
check, guardrails (latency, degraded share) and, for interleaving arms, the preference share with a binomial test.
Writes `<home>/reports/experiments/<day>.html` (and `index.html`, the latest) with the decision rule's verdict.

The task calls `orchestration.pipeline.experiments_report`; `shoprank experiment report --run-date D` runs it alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from orchestration.alerts import on_task_failure

DEFAULT_ARGS = {
    "owner": "ranking",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=20),
    "on_failure_callback": on_task_failure,
}


@dag(
    dag_id="shoprank_experiments",
    schedule="30 6 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["shoprank", "daily", "experiments"],
)
def shoprank_experiments() -> None:
    @task(task_id="experiments_report")
    def experiments_report(logical_date=None) -> dict:
        """Analyse every experiment through the run's day and write the HTML report."""
        from orchestration import pipeline

        return pipeline.experiments_report(pipeline.run_date_for(logical_date))

    experiments_report()


shoprank_experiments()
