"""The shoprank_labelling DAG parses in a real DagBag: one thin task per labelling step, in the flow's order."""

from __future__ import annotations

from orchestration.labelling import STEPS
from shoprank.settings import get_settings


def test_labelling_dag_runs_the_labelling_steps_in_order():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(get_settings().dags_dir / "shoprank_labelling.py"))
    assert bag.import_errors == {}
    dag = bag.dags["shoprank_labelling"]
    order = [f"labels_{name}" for name in STEPS]
    assert sorted(t.task_id for t in dag.tasks) == sorted(order)
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.catchup is False and dag.doc_md and "labelling" in dag.tags
    for task in dag.tasks:
        assert task.retries >= 1 and task.on_failure_callback and task.execution_timeout is not None
