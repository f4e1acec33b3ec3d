"""Feast steps of the pipeline: apply the repo's definitions, materialize a window into the online store.

The repo's ``feature_store.yaml`` reads its paths from the environment that ``apply_runtime_env`` exports, so these
functions and a ``feast`` CLI run from ``feature_repo/`` act on the same registry and online store.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprank.feature_contract import push_views
from shoprank.feature_store import get_feature_store, use_budgeted_offline_engine
from shoprank.resources import within_budget
from shoprank.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

# Materialization re-reads this much before the window's start, so late-arriving rows are picked up; writing the
# same rows again is harmless (the online store keeps the newest value per entity).
MATERIALIZE_OVERLAP = timedelta(days=1)


def repo_objects() -> list[Any]:
    """Every Feast definition (entity, source, view, service) of feature_repo/repo_definitions.py."""
    from feature_repo.repo_definitions import DEFINITIONS

    return list(DEFINITIONS)


def apply_feature_repo(settings: Settings) -> dict[str, Any]:
    """``feast apply``: register the repo's entities, sources, views and services (idempotent)."""
    store = get_feature_store(settings)
    store.apply(repo_objects())
    summary = {
        "feature_views": sorted(v.name for v in store.list_feature_views()),
        "feature_services": sorted(s.name for s in store.list_feature_services()),
    }
    log.info("feast apply: %s", summary)
    return summary


def views_to_materialize(settings: Settings, store: FeatureStore) -> list[str]:
    """Every online view whose offline source exists, and always those the configured ranker's service reads.

    A view of a newer ranker version whose mart is not built in this home yet is skipped with a warning; a view
    the serving feature service needs is never skipped (its missing mart fails the step, as it should). Push views
    (the session view) are never materialized: the stream worker writes them.
    """
    needed = {p.name for p in store.get_feature_service(settings.training.feature_service).feature_view_projections}
    views = []
    for view in store.list_feature_views():
        if view.name in push_views():
            continue
        path = getattr(view.batch_source, "path", None)
        if view.name in needed or not path or Path(path).exists():
            views.append(view.name)
        else:
            log.warning("feast materialize: skipping %s, its source %s does not exist", view.name, path)
    return views


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def materialize(settings: Settings, start: datetime, end: datetime) -> dict[str, Any]:
    """Load feature rows with timestamps in [start - overlap, end] into the online store.

    Keyed on the caller's data interval (not on "now"), so re-running an interval writes the same values.
    """
    store = get_feature_store(settings)
    use_budgeted_offline_engine(settings)
    window_start = start - MATERIALIZE_OVERLAP
    with within_budget(settings, "feast materialize"):
        store.materialize(start_date=window_start, end_date=end, feature_views=views_to_materialize(settings, store))
    log.info("feast materialize: [%s, %s]", window_start.isoformat(), end.isoformat())
    return {"start": window_start.isoformat(), "end": end.isoformat()}


def materialize_for_run(settings: Settings, run_date: date) -> dict[str, Any]:
    """Load the run's new feature rows, up to the snapshot stamped the day after run_date.

    The marts' last snapshot (feature_ts = run_date + 1 day, 00:00 UTC) holds features as of the end of the run's
    day: the one serving should see. The online store keeps each entity's newest row, so a view already loaded up
    to some snapshot (Feast's registry records each view's materialized intervals) needs only the rows from that
    snapshot on (less the overlap): the daily run loads its own two feature days, not the history, and an entity
    absent from them keeps its online row. A view never materialized in this home loads the whole simulated
    window, as a first run always did.
    """
    store = get_feature_store(settings)
    use_budgeted_offline_engine(settings)
    end = day_start(run_date + timedelta(days=1))
    first_run_start = day_start(run_date - timedelta(days=settings.simulator.days - 1))
    starts: dict[datetime, list[str]] = {}
    for name in views_to_materialize(settings, store):
        loaded = store.get_feature_view(name).most_recent_end_time
        start = first_run_start if loaded is None else min(loaded.astimezone(UTC), end)
        starts.setdefault(start, []).append(name)
    windows: dict[str, list[str]] = {}
    for start, names in sorted(starts.items()):
        window_start = start - MATERIALIZE_OVERLAP
        with within_budget(settings, f"feast materialize {names}"):
            store.materialize(start_date=window_start, end_date=end, feature_views=names)
        log.info("feast materialize %s: [%s, %s]", names, window_start.isoformat(), end.isoformat())
        windows[window_start.isoformat()] = names
    return {"start": min(windows, default=None), "end": end.isoformat(), "feature_views_by_start": windows}
