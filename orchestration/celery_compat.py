"""`airflow` for the CeleryExecutor's processes (`python -m orchestration.celery_compat <airflow args>`).

apache-airflow-providers-celery 3.26.0 imports ``retry`` from ``celery.backends.database``, which celery 5.7.0 (the
version the lock resolves) removed: its DatabaseBackend now retries by itself. Without it neither a Celery worker nor
a scheduler on the CeleryExecutor starts ("cannot import name 'retry'"). Before Airflow imports the provider, this
puts back the decorator celery 5.6 had (retry a result-backend read a few times on a database error). Delete this
module when the lock pairs the two (a provider that drops the import, or celery < 5.7).

It also mends the scheduler's read of task states. celery 5.7's DatabaseBackend stores ``celery_taskmeta.result``
serialized (celery PR #10536: bytes, no longer a pickled object), and decodes it in its own reads; the provider's
``BulkStateFetcher._get_many_from_db_backend`` passes the raw row to ``meta_from_decoded``, so every FAILED task's
result reached ``exception_to_python`` as bytes and raised "If the stored exception isn't an instance of
BaseException ..." out of ``CeleryExecutor.update_all_workload_states``: one failed task killed the scheduler.
The replacement decodes the column as celery does and reads each row on its own: a row that still does not decode
keeps its state (a FAILURE is failed, not fatal) and is logged.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _retry(fun: Callable[..., Any]) -> Callable[..., Any]:
    """celery 5.6's ``celery.backends.database.retry``: up to ``max_retries`` (3) attempts on a database error."""
    from sqlalchemy.exc import DatabaseError, InvalidRequestError
    from sqlalchemy.orm.exc import StaleDataError

    @functools.wraps(fun)
    def attempt(*args: Any, **kwargs: Any) -> Any:
        max_retries = kwargs.pop("max_retries", 3)
        for number in range(1, max_retries + 1):
            try:
                return fun(*args, **kwargs)
            except (DatabaseError, InvalidRequestError, StaleDataError):
                if number >= max_retries:
                    raise
                log.warning("%s failed; retrying (%d of %d)", fun.__name__, number, max_retries, exc_info=True)
        return None

    return attempt


def _decoded_meta(backend: Any, row: dict[str, Any]) -> dict[str, Any]:
    """One ``celery_taskmeta`` row as celery's own read returns it; a result that does not decode becomes None."""
    try:
        decode = getattr(backend, "_decode_stored_result", None)  # celery >= 5.7; before, the ORM unpickled it
        if decode is not None:
            row = {**row, "result": decode(row["result"])}
        return dict(backend.meta_from_decoded(row))
    except Exception:  # a decode error, TypeError, ValueError or SecurityError from exception_to_python
        # The state is what the scheduler needs; the error itself is in the task's own log.
        log.exception("Celery task %s (%s): its stored result does not decode", row.get("task_id"), row.get("status"))
        return {**row, "result": None}


def _get_many_from_db_backend(self: Any, async_tasks: Any) -> Any:
    """``BulkStateFetcher._get_many_from_db_backend`` (provider 3.26) with the rows decoded by ``_decoded_meta``."""
    task_ids = self._tasks_list_to_task_ids(async_tasks)
    backend = self.celery_app.backend
    metas = [_decoded_meta(backend, task.to_dict()) for task in self._query_task_cls_from_db_backend(task_ids)]
    return self._prepare_state_and_info_by_task_dict(task_ids, {meta["task_id"]: meta for meta in metas})


def install() -> None:
    """Give ``celery.backends.database`` its ``retry`` back when this celery lacks it, and the provider's state fetch
    its decode (idempotent; the provider is imported here, after the first fix)."""
    import celery.backends.database as database

    if not hasattr(database, "retry"):
        database.retry = _retry  # type: ignore[attr-defined]
    from airflow.providers.celery.executors.celery_executor_utils import BulkStateFetcher

    BulkStateFetcher._get_many_from_db_backend = _get_many_from_db_backend  # type: ignore[method-assign]


def main() -> None:
    install()
    from airflow.__main__ import main as airflow_main

    sys.argv[0] = "airflow"
    airflow_main()


if __name__ == "__main__":
    main()
