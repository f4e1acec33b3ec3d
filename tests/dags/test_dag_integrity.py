"""The DAG folder parses in a real DagBag, and every DAG follows the team's rules."""

from __future__ import annotations

import pytest

from shoprank.pipeline import STEPS
from shoprank.settings import get_settings

QUALITY_GATES = {"validate_raw", "validate_marts", "check_drift"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(get_settings().dags_dir))


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


def test_daily_dag_runs_the_pipeline_steps_in_order(dagbag):
    dag = dagbag.dags["shoprank_daily"]
    expected = [step.replace("-", "_") for step in STEPS]
    assert [t.task_id for t in dag.topological_sort()] == expected
    for upstream, downstream in zip(expected, expected[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids


def test_materialize_dag_is_scheduled_on_what_the_daily_dag_produces(dagbag):
    from shoprank.pipeline import STEP_ASSETS

    daily = dagbag.dags["shoprank_daily"]
    produced = {outlet.uri for t in daily.tasks for outlet in t.outlets}
    assert set(STEP_ASSETS.values()) <= produced
    materialize = dagbag.dags["shoprank_materialize"]
    awaited = {asset.uri for asset in materialize.timetable.asset_condition.objects}
    assert STEP_ASSETS["build-warehouse"] in awaited
    assert materialize.timetable.timetable.expression == "0 * * * *"  # and hourly besides


def test_monitor_dag_follows_the_champion_asset(dagbag):
    from shoprank.pipeline import MONITORS, STEP_ASSETS

    monitor = dagbag.dags["shoprank_monitor"]
    assert {asset.uri for asset in monitor.timetable.asset_condition.objects} == {STEP_ASSETS["promote"]}
    assert sorted(t.task_id for t in monitor.tasks) == sorted(name.replace("-", "_") for name in MONITORS)
