"""Failure alerts for Airflow tasks: one clear line in the task log, a JSON record on disk, and a webhook hook.

Airflow calls :func:`on_task_failure` (the DAGs' ``on_failure_callback``); :func:`alert` is the part with no Airflow
in it, so it is tested alone and usable from the CLI.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from shoprank.settings import Settings, get_settings

log = logging.getLogger("orchestration.alerts")


def alert(settings: Settings, dag_id: str, task_id: str, run_id: str, error: str, try_number: int | None) -> dict:
    """Record a failure and announce it; a webhook that fails is logged, never raised (the task already failed)."""
    record = {
        "at": datetime.now(UTC).isoformat(),
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": try_number,
        "error": error[:2000],
        "how_to_recover": f"fix the cause, then clear {dag_id}.{task_id} (or `shoprank {task_id.replace('_', '-')}`)",
    }
    log.error("SHOPRANK ALERT: %s.%s failed in run %s (try %s): %s", dag_id, task_id, run_id, try_number, error)
    path = settings.home_dir / "alerts" / "alerts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")
    if settings.alerts.webhook_url is not None:
        import httpx

        text = f":rotating_light: ShopRank {dag_id}.{task_id} failed ({run_id}): {error[:300]}"
        try:
            httpx.post(
                settings.alerts.webhook_url.get_secret_value(),
                json={"text": text},
                timeout=settings.alerts.timeout_seconds,
            ).raise_for_status()
        except httpx.HTTPError as err:
            log.warning("alert webhook failed: %s", err)
    return record


def on_task_failure(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``."""
    ti = context["ti"]
    alert(
        get_settings(),
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=str(context.get("run_id") or ti.run_id),
        error=repr(context.get("exception")),
        try_number=getattr(ti, "try_number", None),
    )
