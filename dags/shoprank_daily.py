"""
### shoprank_daily — raw events to a registered ranker, once a day

Each task calls one function of `shoprank.pipeline`, the same one `shoprank <step>` and `make` run, so any task can
be reproduced outside Airflow with `shoprank <step> --run-date YYYY-MM-DD`.

Tasks, in order (each safe to re-run for its day):
- `simulate`: writes the raw partitions of the run's window (deterministic per seed; overwritten identically).
- `build_warehouse`: `dbt build` of staging views, feature marts and dbt tests; the log names a failed node.
- `validate_marts`: Great Expectations suites over the marts; on bad data nothing downstream runs and the
  served model is untouched.
- `feast_apply`: registers entities, feature views and the feature service.
- `materialize`: loads the run's feature window into the online store (keyed on the run's day).
- `train`: point-in-time training set, XGBoost LambdaMART, holdout NDCG@10 next to popularity; writes a candidate.
- `register`: saves the candidate to the BentoML model store, where `make serve` picks it up.

Recover from a failure by fixing its cause and clearing the task; reproduce any task outside Airflow with
`shoprank <task> --run-date YYYY-MM-DD`.

The run stamped with logical date D processes day D-1 (the day that has just ended).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

# Step order and names; shoprank.pipeline imports nothing heavy (the steps import their stack lazily).
from shoprank.pipeline import STEPS

DEFAULT_ARGS = {
    "owner": "ranking",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(minutes=30),
}


def run_step(step: str, logical_date=None) -> dict:
    """Run one pipeline step for the day this DAG run processes (Airflow injects logical_date)."""
    from shoprank import pipeline

    return pipeline.STEPS[step](pipeline.run_date_for(logical_date))


@dag(
    dag_id="shoprank_daily",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["shoprank", "daily", "training"],
)
def shoprank_daily() -> None:
    previous = None
    for step in STEPS:
        current = task(run_step, task_id=step.replace("-", "_"), doc_md=STEPS[step].__doc__)(step=step)
        if previous is not None:
            previous >> current
        previous = current


shoprank_daily()
