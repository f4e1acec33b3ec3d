"""
### shoprank_experiments — which ranker wins online?

Every morning, analyses every experiment of `serving/experiments.yaml` from its start through yesterday: exposures
and outcomes from the ranking service's request and events logs, per arm CTR, purchases per request and GMV per
user against the control (tea-tasting, CUPED on the pre-period, 95% intervals, MDE at 80% power), the sample-ratio
check, guardrails (latency, degraded share) and, for interleaving arms, the preference share with a binomial test.
Writes `<home>/reports/experiments/<day>.html` (and `index.html`, the latest) with the decision rule's verdict.

Then decides every experiment that stopped by that day and has no decision yet (quality/experiments/decision.py:
GMV per user significantly better, no guardrail broken, SRM ok, enough power): a winning arm's model is promoted
through the gate's online path into the registry; shipped or refused, the decision is written with its numbers
under `<home>/reports/experiments/decisions/`. Running experiments are not decided (no acting on daily peeks).

The tasks call `orchestration.pipeline.experiments_report` and `orchestration.experiments.decide_day`;
`shoprank experiment report|decide` run them alone.
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

    @task(task_id="experiments_decide")
    def experiments_decide(logical_date=None) -> dict:
        """Decide every experiment that stopped by the run's day: promote a clear winner's model, or record why not."""
        from orchestration import experiments, pipeline

        return experiments.decide_day(pipeline.run_date_for(logical_date))

    experiments_report() >> experiments_decide()


shoprank_experiments()
