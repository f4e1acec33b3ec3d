"""The CeleryExecutor's scheduler-side state read survives a failed task (orchestration/celery_compat.py).

celery 5.7 stores ``celery_taskmeta.result`` serialized; the provider's bulk read handed the raw bytes to
``exception_to_python``, so the first FAILED task raised TypeError out of ``update_all_workload_states`` and the
scheduler died. Here a real CeleryExecutor reads rows a worker's backend wrote into a SQLite result database: no
broker, no worker, no Airflow process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from orchestration import celery_compat


def _key(task_id: str) -> Any:
    from airflow.models.taskinstancekey import TaskInstanceKey

    return TaskInstanceKey("shoprank_daily", task_id, "manual__2026-01-05", 1, -1)


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW__CELERY__RESULT_BACKEND", f"db+sqlite:///{tmp_path / 'results.db'}")
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", "memory://")
    celery_compat.install()
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor

    return CeleryExecutor()


def test_a_failed_task_whose_result_was_an_exception_is_failed_and_the_scheduler_lives(executor: Any):
    from airflow.utils.state import TaskInstanceState
    from celery.backends.database import DatabaseBackend
    from celery.result import AsyncResult

    backend = executor.celery_app.backend
    assert isinstance(backend, DatabaseBackend)
    ids = {name: str(uuid.uuid4()) for name in ("timeout", "ok", "garbled", "queued")}
    backend.mark_as_failure(ids["timeout"], httpx.ReadTimeout("timed out"))  # what a worker stores
    backend.mark_as_done(ids["ok"], None)
    backend.mark_as_failure(ids["garbled"], RuntimeError("x"))
    with backend.ResultSession() as session:  # a FAILURE row whose result decodes to nothing an exception can be
        session.execute(
            sa.text("update celery_taskmeta set result = :r where task_id = :t"),
            {"r": b"\x00not json", "t": ids["garbled"]},
        )
        session.commit()
        rows = {row.task_id: row for row in session.scalars(sa.select(backend.task_cls))}
    # The stored shape that crashed the scheduler: the provider's read (meta_from_decoded of the raw row) raises.
    with pytest.raises(TypeError, match="isn't an instance of BaseException"):
        backend.meta_from_decoded(rows[ids["timeout"]].to_dict())

    for name, task_id in ids.items():
        executor.workloads[_key(name)] = AsyncResult(task_id, app=executor.celery_app)
        executor.running.add(_key(name))
    executor.update_all_workload_states()  # raised TypeError before the fix

    assert executor.event_buffer[_key("timeout")][0] == TaskInstanceState.FAILED
    assert executor.event_buffer[_key("garbled")][0] == TaskInstanceState.FAILED
    assert executor.event_buffer[_key("ok")][0] == TaskInstanceState.SUCCESS
    assert _key("queued") not in executor.event_buffer  # no row yet: PENDING, still watched
    assert set(executor.workloads) == {_key("queued")} and executor.running == {_key("queued")}


def test_a_decodable_failure_reads_as_celery_itself_reads_it(executor: Any):
    backend = executor.celery_app.backend
    task_id = str(uuid.uuid4())
    backend.mark_as_failure(task_id, httpx.ReadTimeout("timed out"))
    with backend.ResultSession() as session:
        (row,) = session.scalars(sa.select(backend.task_cls).where(backend.task_cls.task_id == task_id))
        meta = celery_compat._decoded_meta(backend, row.to_dict())
    assert meta["status"] == "FAILURE"
    assert isinstance(meta["result"], httpx.ReadTimeout) and meta["result"].args == ("timed out",)
