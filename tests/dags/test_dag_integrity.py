"""The DAG folder parses in a real DagBag, and every DAG follows the team's rules."""

from __future__ import annotations

import json
import time

import pytest

from orchestration import airflow_ops as ops
from orchestration.pipeline import STEPS
from shoprank.settings import get_settings

QUALITY_GATES = {"validate_raw", "validate_marts", "check_drift"}
GROUP = "build_warehouse"


@pytest.fixture(scope="module")
def manifest() -> dict:
    """The dbt manifest the daily DAG is rendered from, produced as `make airflow-init` does (`dbt parse`)."""
    return json.loads(ops.parse_dbt_project(get_settings()).read_text())


@pytest.fixture(scope="module")
def dagbag(manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(get_settings().dags_dir))


@pytest.fixture(scope="module")
def model_dagbag(manifest):
    """The DAG folder parsed with one dbt task per model (SHOPRANK_AIRFLOW__DBT_TASKS=model)."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SHOPRANK_AIRFLOW__DBT_TASKS", "model")
        get_settings.cache_clear()
        try:
            return DagBag(dag_folder=str(get_settings().dags_dir))
        finally:
            get_settings.cache_clear()


def _models(manifest: dict) -> dict[str, set[str]]:
    """Model name -> the models it reads, as dbt's lineage says."""
    nodes = manifest["nodes"]
    return {
        node["name"]: {nodes[p]["name"] for p in node["depends_on"]["nodes"] if p.startswith("model.")}
        for node in nodes.values()
        if node["resource_type"] == "model"
    }


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "shoprank_daily" in dagbag.dags


def test_every_dag_is_tagged_documented_retried_and_not_catching_up(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert dag.catchup is False, f"{dag_id} catches up"
        for task in dag.tasks:
            if task.task_id in QUALITY_GATES:  # bad data stays bad: a gate fails at once
                assert task.retries == 0, f"{dag_id}.{task.task_id} is a gate and must not retry"
            else:
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} raises no alert on failure"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no timeout"


def test_daily_dag_runs_one_dbt_build_task_by_default_on_the_dbt_queue_in_the_one_slot_pool(dagbag):
    dag = dagbag.dags["shoprank_daily"]
    order = [t.task_id for t in dag.topological_sort()]
    assert order == [step.replace("-", "_") for step in STEPS]
    build = dag.get_task("build_warehouse")
    assert build.upstream_task_ids == {"validate_raw"} and build.downstream_task_ids == {"validate_marts"}
    assert build.pool == ops.DBT_POOL
    settings = get_settings()
    assert build.queue == settings.airflow.dbt_queue == ops.step_queue(settings, "build-warehouse")
    assert dag.get_task("train").queue == settings.airflow.training_queue
    assert dag.get_task("publish").queue == settings.airflow.default_queue


def test_daily_dag_runs_the_pipeline_steps_in_order_around_the_dbt_group(model_dagbag):
    dag = model_dagbag.dags["shoprank_daily"]
    order = [t.task_id for t in dag.topological_sort()]
    outside = [task_id for task_id in order if not task_id.startswith(f"{GROUP}.")]
    assert outside == [step.replace("-", "_") for step in STEPS if step != "build-warehouse"]
    group = [task_id for task_id in order if task_id.startswith(f"{GROUP}.")]
    # The whole group sits between the raw gate and the mart gate, in one block.
    assert order[order.index("validate_raw") + 1 : order.index("validate_marts")] == group
    assert dag.get_task("validate_marts").upstream_task_ids == {f"{GROUP}.cross_model_tests"}
    for upstream, downstream in zip(outside, outside[1:], strict=False):
        if downstream != "validate_marts":
            assert downstream in dag.get_task(upstream).downstream_task_ids


def test_marts_are_published_after_the_last_gate_and_before_anything_reads_them(model_dagbag):
    from orchestration.pipeline import STEP_ASSETS

    dag = model_dagbag.dags["shoprank_daily"]
    order = [t.task_id for t in dag.topological_sort() if not t.task_id.startswith(f"{GROUP}.")]
    assert order == [
        "simulate",
        "validate_raw",
        "validate_marts",
        "check_drift",
        "publish",
        "build_retrieval",
        "feast_apply",
        "materialize",
        "train",
        "train_preranker",
        "train_cold_start_prior",
        "register",
        "promote",
        "deploy",
    ]
    publish = dag.get_task("publish")
    assert publish.upstream_task_ids == {"check_drift"} and publish.retries >= 1  # idempotent: safe to retry
    # Downstream DAGs (hourly materialization) hear of new marts when they are published, not when dbt built them.
    assert [outlet.uri for outlet in publish.outlets] == [STEP_ASSETS["publish"]] == ["shoprank://warehouse/marts"]


def test_one_dbt_task_per_model_following_dbt_lineage_in_the_one_slot_pool(model_dagbag, manifest):
    dag = model_dagbag.dags["shoprank_daily"]
    models = _models(manifest)
    task_of = {model: f"{GROUP}.{model}_model_build" for model in models}
    dbt_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith(f"{GROUP}.")}
    assert dbt_tasks == {*task_of.values(), f"{GROUP}.cross_model_tests"}

    for model, parents in models.items():
        task = dag.get_task(task_of[model])
        expected_upstream = {task_of[p] for p in parents} or {"validate_raw"}
        assert task.upstream_task_ids == expected_upstream, model
        assert task.pool == ops.DBT_POOL and task.queue == get_settings().airflow.dbt_queue
        # `dbt build` of the model alone: its unit tests, the model, its single-model tests; the run's day as var.
        assert task.select == f"fqn:{'.'.join(manifest['nodes'][f'model.shoprank.{model}']['fqn'])}"
        assert task.indirect_selection == "cautious"
        assert task.vars == "{{ shoprank_dbt_vars(logical_date) }}"
        assert task.profile_config.profiles_yml_filepath == get_settings().dbt_project_dir / "profiles.yml"
        assert task.env["SHOPRANK_WAREHOUSE_PATH"] == str(get_settings().warehouse_path)
        assert task.callback is ops.release_warehouse  # closes DuckDB after dbt (dags test: one process)

    leaves = {task_of[m] for m in models if not any(m in parents for parents in models.values())}
    cross = dag.get_task(f"{GROUP}.cross_model_tests")
    assert cross.upstream_task_ids == leaves and cross.pool == ops.DBT_POOL
    assert cross.outlets == []  # the built marts are not published yet: the asset is the publish task's


def test_dbt_tasks_get_the_clis_vars_for_the_runs_day():
    from datetime import timedelta

    from warehouse.build import dbt_args

    day = get_settings().default_run_date
    args = dbt_args(get_settings(), "build", day)
    # The run stamped D+1 processes D: the same --vars `shoprank build-warehouse --run-date D` passes.
    assert ops.dbt_vars(f"{day + timedelta(days=1)}T00:00:00+00:00") == args[args.index("--vars") + 1]
    assert json.loads(args[args.index("--vars") + 1])["run_date"] == day.isoformat()


def test_cross_model_tests_are_the_tests_reading_two_models(manifest):
    tests = ops.cross_model_tests(get_settings())
    assert tests and all(name.startswith("relationships_") for name in tests)
    singles = [n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    assert set(tests) < set(singles)


def test_without_a_manifest_the_daily_dag_still_parses_and_says_what_to_run(monkeypatch, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path))
    monkeypatch.setenv("SHOPRANK_AIRFLOW__DBT_TASKS", "model")  # the per-model tasks need the manifest
    get_settings.cache_clear()
    try:
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(get_settings().dags_dir / "shoprank_daily.py"))
        assert time.perf_counter() - started < 60
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert bag.import_errors == {}
    dag = bag.dags["shoprank_daily"]
    assert [t.task_id for t in dag.topological_sort()] == [step.replace("-", "_") for step in STEPS]
    build = dag.get_task("build_warehouse")
    assert "make airflow-init" in build.doc_md and "make airflow-init" in dag.doc_md.split("\n")[0]
    assert not any(t.task_id.startswith(f"{GROUP}.") for t in dag.tasks)


def test_on_the_postgres_target_the_raw_data_is_loaded_before_the_staging_models(monkeypatch, manifest):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SHOPRANK_DBT_TARGET", "postgres")
    monkeypatch.setenv("SHOPRANK_AIRFLOW__DBT_TASKS", "model")  # one `dbt build` task loads the raw data itself
    get_settings.cache_clear()
    try:
        dag = DagBag(dag_folder=str(get_settings().dags_dir / "shoprank_daily.py")).dags["shoprank_daily"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    load = dag.get_task(f"{GROUP}.load_raw")
    assert load.upstream_task_ids == {"validate_raw"} and load.pool == ops.DBT_POOL
    staging = {f"{GROUP}.{m}_model_build" for m, parents in _models(manifest).items() if not parents}
    assert load.downstream_task_ids == staging
    assert dag.get_task(f"{GROUP}.stg_events_model_build").profile_config.target_name == "postgres"


def test_a_manifest_older_than_the_dbt_project_is_reported(tmp_path):
    import os

    from shoprank.settings import Settings

    settings = Settings(home=tmp_path / "home", project_root=tmp_path)
    model = tmp_path / "dbt_project" / "models" / "marts" / "new_mart.sql"
    model.parent.mkdir(parents=True)
    model.write_text("select 1 as dt")
    assert "no dbt manifest" in ops.dbt_manifest_problem(settings)
    manifest = ops.dbt_manifest_path(settings)
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    assert ops.dbt_manifest_problem(settings) is None
    os.utime(model, (manifest.stat().st_mtime + 5,) * 2)
    assert "models/marts/new_mart.sql" in ops.dbt_manifest_problem(settings)


def test_materialize_dag_is_scheduled_on_what_the_daily_dag_produces(dagbag):
    from orchestration.pipeline import STEP_ASSETS

    daily = dagbag.dags["shoprank_daily"]
    produced = {outlet.uri for t in daily.tasks for outlet in t.outlets}
    assert set(STEP_ASSETS.values()) <= produced
    materialize = dagbag.dags["shoprank_materialize"]
    awaited = {asset.uri for asset in materialize.timetable.asset_condition.objects}
    assert STEP_ASSETS["publish"] in awaited
    assert materialize.timetable.timetable.expression == "0 * * * *"  # and hourly besides


def test_monitor_dag_follows_the_champion_asset(dagbag):
    from orchestration.pipeline import MONITORS, STEP_ASSETS

    monitor = dagbag.dags["shoprank_monitor"]
    assert {asset.uri for asset in monitor.timetable.asset_condition.objects} == {STEP_ASSETS["promote"]}
    assert sorted(t.task_id for t in monitor.tasks) == sorted(name.replace("-", "_") for name in MONITORS)


def test_backfill_command_processes_the_given_days():
    from datetime import date

    command = ops.backfill_command(date(2026, 1, 5), date(2026, 1, 7))
    assert command[1:5] == ["backfill", "create", "--dag-id", "shoprank_daily"]
    # A run stamped D processes D-1: the days 5..7 are the logical dates 6..8.
    assert command[command.index("--from-date") + 1] == "2026-01-06"
    assert command[command.index("--to-date") + 1] == "2026-01-08"
    assert command[command.index("--max-active-runs") + 1] == "1"
    with pytest.raises(ValueError, match="before START"):
        ops.backfill_command(date(2026, 1, 7), date(2026, 1, 5))
