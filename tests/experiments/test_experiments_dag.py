"""The shoprank_experiments DAG parses in a real DagBag and decides only after the report is written."""

from __future__ import annotations

from shoprank.settings import get_settings


def test_the_experiments_dag_reports_then_decides() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(get_settings().dags_dir / "shoprank_experiments.py"))
    assert bag.import_errors == {}
    dag = bag.dags["shoprank_experiments"]
    assert set(dag.task_dict) == {"experiments_report", "experiments_decide"}
    assert dag.task_dict["experiments_decide"].upstream_task_ids == {"experiments_report"}
