"""
### shoprank_daily — raw events to a registered ranker, once a day

Each task calls one function of `shoprank.pipeline`, the same one `shoprank <step>` and `make` run, so any task can
be reproduced outside Airflow with `shoprank <step> --run-date YYYY-MM-DD`.

Tasks, in order (each safe to re-run for its day):
- `simulate`: writes the raw partitions of the run's window (deterministic per seed; overwritten identically).
- `validate_raw`: Great Expectations suites over the run's raw partitions (schema, keys, event_id uniqueness,
  domains, prices and stock, timestamps inside the day, events -> known items and users, volume band). A failing
  partition moves to `<home>/quarantine/<table>/dt=<day>/` with its result; the log names suite, table, partition,
  failed expectations and sample rows; nothing downstream runs. Fix it, `shoprank quarantine release --table T
  --dt D`, clear the task.
- `build_warehouse`: `dbt build` of staging views, feature marts and dbt tests; the log names a failed node.
- `validate_marts`: Great Expectations suites over the marts; on bad data nothing downstream runs and the
  served model is untouched.
- `feast_apply`: registers entities, feature views (user, item, seller, on-demand) and the feature services.
- `materialize`: loads the run's feature window into the online store (keyed on the run's day).
- `check_drift`: PSI of every model feature, run's day vs the training window; warns, or blocks training.
- `train`: point-in-time training set (Feast historical retrieval), XGBoost LambdaMART + CTR/CVR models with early
  stopping on the last training day; holdout NDCG@5/10/20, MAP, AUC, calibration, slices, vs popularity, random
  and the simulator's oracle; writes a candidate and its HTML report (path in the task's XCom `report`).
- `register`: saves the candidate to the BentoML model store as a challenger (metadata: data window, feature
  service, metrics, code version, training rows, report path).
- `promote`: the champion/challenger gate; the challenger replaces the champion only if it beats it on the same
  holdout by the configured margin and passes the minimum slices. The decision and its reasons are in the log,
  the XCom and `<home>/models/decisions/`; serving follows `<home>/models/registry.json`. Undo: `make rollback`.

Recover from a failure by fixing its cause and clearing the task; reproduce any task outside Airflow with
`shoprank <task> --run-date YYYY-MM-DD`.

The run stamped with logical date D processes day D-1 (the day that has just ended).

Quality gates do not retry (bad data stays bad). Why a gate failed: Data Docs (`make docs` prints the path; HTML
built on every validation) and the JSON results in `<home>/quality/`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, dag, task

from shoprank.alerts import on_task_failure

# Step order and names; shoprank.pipeline imports nothing heavy (the steps import their stack lazily).
from shoprank.pipeline import STEP_ASSETS, STEPS

DEFAULT_ARGS = {
    "owner": "ranking",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": on_task_failure,
}


# Data-quality gates: a failure is a finding about the data, not a flake, so they fail at once.
QUALITY_GATES = {"validate-raw", "validate-marts", "check-drift"}


def _docs_md() -> str:
    """The DAG's docs plus where this deployment's Data Docs and dbt docs are (paths from the settings)."""
    from shoprank.quality.docs import docs_paths

    links = "\n".join(f"- {name}: `{path}`" for name, path in docs_paths().items())
    return f"{__doc__}\nDocs of this deployment (`make docs` builds both):\n{links}\n"


def run_step(step: str, logical_date=None, outlet_events=None) -> dict:
    """Run one pipeline step for the day this DAG run processes (Airflow injects the context arguments).

    A step that updates an asset stamps the asset event with that day, for the DAGs scheduled on it.
    """
    from shoprank import pipeline

    run_date = pipeline.run_date_for(logical_date)
    result = pipeline.STEPS[step](run_date)
    if step in STEP_ASSETS and outlet_events is not None:
        outlet_events[Asset(STEP_ASSETS[step])].extra = {"run_date": run_date.isoformat()}
    return result


@dag(
    dag_id="shoprank_daily",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=_docs_md(),
    tags=["shoprank", "daily", "training"],
)
def shoprank_daily() -> None:
    previous = None
    for step in STEPS:
        options: dict = {"retries": 0} if step in QUALITY_GATES else {}
        if step in STEP_ASSETS:  # downstream DAGs are scheduled on these
            options["outlets"] = [Asset(STEP_ASSETS[step])]
        current = task(run_step, task_id=step.replace("-", "_"), doc_md=STEPS[step].__doc__, **options)(step=step)
        if previous is not None:
            previous >> current
        previous = current


shoprank_daily()
