"""
### shoprank_daily — raw events to a registered ranker, once a day

Each task calls one function of `orchestration.pipeline`, the same one `shoprank <step>` and `make` run, so any task can
be reproduced outside Airflow with `shoprank <step> --run-date YYYY-MM-DD`.

Tasks, in order (each safe to re-run for its day):
- `simulate`: writes the raw partitions of the run's window (deterministic per seed; overwritten identically).
- `validate_raw`: Great Expectations suites over the run's raw partitions (schema, keys, event_id uniqueness,
  domains, prices and stock, timestamps inside the day, events -> known items and users, volume band). A failing
  partition moves to `<home>/quarantine/<table>/dt=<day>/` with its result; the log names suite, table, partition,
  failed expectations and sample rows; nothing downstream runs. Fix it, `shoprank quarantine release --table T
  --dt D`, clear the task.
- `build_warehouse`: one task running the whole `dbt build` for the run's day, as `shoprank build-warehouse --run-date`
  does (settings.airflow.dbt_tasks = "build", the default: a task start per model cost more than the models' work,
  `make bench-dag`); a failure names its model or test in the log, and clearing the task rebuilds the day.
  With `SHOPRANK_AIRFLOW__DBT_TASKS=model` it is a task group instead, rendered by astronomer-cosmos from the dbt
  manifest: one task per dbt model,
  `build_warehouse.<model>_model_build`, running `dbt build --select <model>` (its unit tests, the model, its
  single-model data tests) after the models it reads, as dbt's lineage says; then `build_warehouse.cross_model_tests`
  runs the tests that join two models (`relationships`). dbt exports the marts to the build area
  (`<home>/warehouse/build/`), which nothing but the gates reads. dbt gets the run's day as var `run_date`, exactly
  as `shoprank build-warehouse --run-date` passes it. Every dbt task takes the one slot of the `shoprank_dbt` pool
  (DuckDB has a single writer), so dbt tasks of different runs (backfills) never overlap.
  A failed model or test fails its own task (clear it to retry from there; `shoprank build-warehouse --run-date D`
  rebuilds everything outside Airflow). The manifest comes from `make airflow-init` (`dbt parse`); re-run it after
  changing dbt_project/. Without a manifest this is one `build_warehouse` task running the whole `dbt build`.
- `validate_marts`: Great Expectations suites over the built marts; on bad data nothing downstream runs and the
  served marts and model are untouched.
- `check_drift`: PSI of every model feature of the build, run's day vs the training window; warns, or blocks.
- `publish`: copies the build, judged by both gates, into `<home>/warehouse/snapshots/<day>-<hash>/` with a
  manifest and atomically points `<home>/warehouse/marts` (what Feast, training and serving read) at it; marks the
  marts asset updated. It refuses a build the gates did not pass on. Until it runs, the previous snapshot serves.
- `build_retrieval`: builds the recall indexes from the published snapshot and the catalogue (bm25s over titles
  and category words; item2vec over the training window's clicks in a faiss index) into
  `<home>/retrieval/<day>/` and points `<home>/retrieval/CURRENT` at it; serving loads it (a failed load keeps the
  previous index).
- `feast_apply`: registers entities, feature views (user, item, seller, on-demand) and the feature services.
- `materialize`: loads the run's feature window into the online store (keyed on the run's day).
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

Backfill (runs for past days, each rebuilding exactly its own partitions): `make backfill START=2026-01-05
END=2026-01-07` (the days processed; it wraps `airflow backfill create --dag-id shoprank_daily --from-date ...
--to-date ... --max-active-runs 1`) with `make airflow` running and this DAG unpaused: backfill runs do not start
while the DAG is paused.

Quality gates do not retry (bad data stays bad). Why a gate failed: Data Docs (`make docs` prints the path; HTML
built on every validation) and the JSON results in `<home>/quality/`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, dag, task

from orchestration import airflow_ops as ops
from orchestration.alerts import on_task_failure

# Step order and names; orchestration.pipeline imports nothing heavy (the steps import their stack lazily).
from orchestration.pipeline import STEP_ASSETS, STEPS
from shoprank.settings import get_settings

DEFAULT_ARGS = {
    "owner": "ranking",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": on_task_failure,
}


NO_MANIFEST = "No dbt manifest: the whole `dbt build` in one task. Run `make airflow-init` for one task per model."

# Data-quality gates: a failure is a finding about the data, not a flake, so they fail at once.
QUALITY_GATES = {"validate-raw", "validate-marts", "check-drift"}


def _docs_md() -> str:
    """The DAG's docs plus where this deployment's Data Docs and dbt docs are (paths from the settings)."""
    from orchestration.quality_docs import docs_paths

    links = "\n".join(f"- {name}: `{path}`" for name, path in docs_paths().items())
    settings = get_settings()
    problem = ops.dbt_manifest_problem(settings) if settings.airflow.dbt_tasks == "model" else None
    warning = f"**Warning**: {problem}\n\n" if problem else ""
    browse = (
        "In this UI: **Browse → ShopRank docs** ([/shoprank/](/shoprank/)) serves Data Docs, dbt docs, every "
        "training day's evaluation report and the monitoring reports, behind this login (plugins/shoprank_docs.py)."
    )
    return f"{warning}{__doc__}\n{browse}\n\nDocs of this deployment (`make docs` builds both):\n{links}\n"


def run_step(step: str, logical_date=None, outlet_events=None) -> dict:
    """Run one pipeline step for the day this DAG run processes (Airflow injects the context arguments).

    A step that updates an asset stamps the asset event with that day, for the DAGs scheduled on it.
    """
    from orchestration import pipeline

    run_date = pipeline.run_date_for(logical_date)
    result = pipeline.STEPS[step](run_date)
    if step in STEP_ASSETS and outlet_events is not None:
        outlet_events[Asset(STEP_ASSETS[step])].extra = {"run_date": run_date.isoformat()}
    return result


def run_cross_model_tests(logical_date=None) -> dict:
    """The dbt tests that join two models, after every model of the run (the marts asset waits for `publish`)."""
    from orchestration import pipeline

    return ops.run_cross_model_tests(pipeline.run_date_for(logical_date))


def load_raw(logical_date=None) -> dict:
    """PostgreSQL target only: mirror the raw partitions into the warehouse database before the staging models."""
    from orchestration import pipeline

    return ops.load_raw_for_dbt(pipeline.run_date_for(logical_date))


def build_warehouse_group():
    """The dbt models as one cosmos task each, then the cross-model tests; None without a manifest or when the
    settings ask for one `dbt build` task (settings.airflow.dbt_tasks)."""
    settings = get_settings()
    if settings.airflow.dbt_tasks != "model":
        return None
    dbt = {"pool": ops.DBT_POOL, "queue": ops.step_queue(settings, "build-warehouse")}
    group = ops.dbt_task_group(settings, group_id="build_warehouse", operator_args={"queue": dbt["queue"]})
    if group is None:
        return None
    first, last = list(group.get_roots()), list(group.get_leaves())
    with group:
        if settings.dbt_target_name == "postgres":
            task(load_raw, task_id="load_raw", doc_md=load_raw.__doc__, **dbt)() >> first
        tests = task(run_cross_model_tests, task_id="cross_model_tests", doc_md=run_cross_model_tests.__doc__, **dbt)()
    last >> tests
    return group


@dag(
    dag_id="shoprank_daily",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=_docs_md(),
    tags=["shoprank", "daily", "training"],
    # The dbt tasks render their --vars from the run's logical date with the same code as the CLI.
    user_defined_macros={"shoprank_dbt_vars": ops.dbt_vars},
)
def shoprank_daily() -> None:
    previous = None
    for step in STEPS:
        current = build_warehouse_group() if step == "build-warehouse" else None
        if current is None:
            options: dict = {"retries": 0} if step in QUALITY_GATES else {}
            options["queue"] = ops.step_queue(get_settings(), step)  # Celery routes by it; LocalExecutor ignores it
            if step in STEP_ASSETS:  # downstream DAGs are scheduled on these
                options["outlets"] = [Asset(STEP_ASSETS[step])]
            doc = STEPS[step].__doc__
            if step == "build-warehouse":  # one `dbt build`: the warehouse's one writer, as the per-model tasks
                options["pool"] = ops.DBT_POOL
                if get_settings().airflow.dbt_tasks == "model":  # no manifest: say how to get the per-model tasks
                    doc = f"{NO_MANIFEST}\n\n{doc}"
            current = task(run_step, task_id=step.replace("-", "_"), doc_md=doc, **options)(step=step)
        if previous is not None:
            previous >> current
        previous = current


shoprank_daily()
