"""
### shoprank_labelling — human relevance judgments for search

Every morning, after the day's search log is in: samples the (query, item) pairs to label within
`settings.labelling.daily_budget` (stratified by query frequency and the ranker's position, active-learning picks
where the relevance model is unsure or disagrees with clicks, gold questions with known grades mixed in), imports
them into the Label Studio relevance project (`make labelstudio` runs it on loopback), lets the simulated labellers
answer through its API (adaptive overlap), exports and checks the annotations, then aggregates them with quality
control (gold accuracy, Krippendorff's alpha, careless labellers down-weighted) and retrains the relevance model.

Each task calls one function of `orchestration.labelling`; `shoprank labels sample|import|simulate|export|aggregate`
run them alone. docs/labelling.md describes the flow and the experiments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from orchestration.alerts import on_task_failure

DEFAULT_ARGS = {
    "owner": "search-quality",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=60),
    "on_failure_callback": on_task_failure,
}


@dag(
    dag_id="shoprank_labelling",
    schedule="0 7 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["shoprank", "daily", "labelling"],
)
def shoprank_labelling() -> None:
    def step(name: str):  # one thin task per labelling step
        @task(task_id=f"labels_{name}")
        def run(logical_date=None) -> dict:
            from orchestration import labelling, pipeline

            return labelling.STEPS[name](pipeline.run_date_for(logical_date))

        return run()

    tasks = [step(name) for name in ("sample", "import", "simulate", "export", "aggregate")]
    for upstream, downstream in zip(tasks, tasks[1:], strict=False):
        upstream >> downstream


shoprank_labelling()
