"""The labelling flow's steps for the shoprank_labelling DAG, the CLI (`shoprank labels ...`) and make: each one
takes the run's day, reads settings and calls one labelling/ function (labelling/workflow.py does the work)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from shoprank.settings import Settings, apply_runtime_env, get_settings


def _settings() -> Settings:
    settings = get_settings()
    settings.ensure_dirs()
    apply_runtime_env(settings)
    return settings


def sample(run_date: date) -> dict[str, Any]:
    """Sample the day's (query, item) pairs to label: stratified, active-learning picks, gold questions."""
    from labelling.workflow import sample as run

    return run(_settings(), run_date)


def import_tasks(run_date: date) -> dict[str, Any]:
    """Import the day's tasks into the Label Studio relevance project (pre-labels when a model exists)."""
    from labelling.workflow import import_tasks as run

    return run(_settings(), run_date)


def simulate_labellers(run_date: date) -> dict[str, Any]:
    """Simulated labellers answer the day's tasks through Label Studio's API (adaptive overlap, gold)."""
    from labelling.workflow import simulate_labellers as run

    return run(_settings(), run_date)


def export(run_date: date) -> dict[str, Any]:
    """Export and check the day's annotations from Label Studio."""
    from labelling.workflow import export as run

    return run(_settings(), run_date)


def aggregate(run_date: date) -> dict[str, Any]:
    """Quality control and aggregated grades of the day; the relevance model retrained on every grade so far."""
    from labelling.workflow import aggregate_day as run

    return run(_settings(), run_date)


STEPS: dict[str, Callable[[date], dict[str, Any]]] = {
    "sample": sample,
    "import": import_tasks,
    "simulate": simulate_labellers,
    "export": export,
    "aggregate": aggregate,
}


def studio(action: str) -> dict[str, Any]:
    """Label Studio in its own venv under the home: ``install``, ``start`` (installs first) or ``stop``."""
    from labelling import studio as ls

    settings = _settings()
    if action == "install":
        return {"label_studio": str(ls.install(settings))}
    if action == "start":
        ls.install(settings)
        conn = ls.start(settings)
        return {
            "url": conn.url,
            "login": conn.admin_email,
            "credentials": str(settings.labelstudio_dir / "credentials.json"),
            "stop": "shoprank labels studio stop",
        }
    if action == "stop":
        return {"stopped": ls.stop(settings)}
    raise ValueError(f"unknown Label Studio action {action!r}: install, start or stop")
