"""`airflow` for the CeleryExecutor's processes (`python -m orchestration.celery_compat <airflow args>`).

apache-airflow-providers-celery 3.26.0 imports ``retry`` from ``celery.backends.database``, which celery 5.7.0 (the
version the lock resolves) removed: its DatabaseBackend now retries by itself. Without it neither a Celery worker nor
a scheduler on the CeleryExecutor starts ("cannot import name 'retry'"). Before Airflow imports the provider, this
puts back the decorator celery 5.6 had (retry a result-backend read a few times on a database error). Delete this
module when the lock pairs the two (a provider that drops the import, or celery < 5.7).
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


def install() -> None:
    """Give ``celery.backends.database`` its ``retry`` back when this celery lacks it (idempotent)."""
    import celery.backends.database as database

    if not hasattr(database, "retry"):
        database.retry = _retry  # type: ignore[attr-defined]


def main() -> None:
    install()
    from airflow.__main__ import main as airflow_main

    sys.argv[0] = "airflow"
    airflow_main()


if __name__ == "__main__":
    main()
