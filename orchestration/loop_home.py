"""One warm-up shared by every policy of a closed-loop comparison (orchestration/loop.py).

The warm-up (the logging simulator's history window and the daily pipeline on it, with the first trained champion)
does not depend on the policy: for the same seed and sizes it is identical. The bench builds it once in a home of
its own (:func:`build_warm_up`) and each policy's run starts from a copy (:func:`copy_warm_up`) instead of paying
for it again (it is most of a short run's time).

A home holds its own absolute path in a few places: JSON and YAML records (candidates, snapshots, the model
store's metadata) are rewritten in the copy; dbt's target directory is left out (dbt rebuilds it); Feast's
registry points its file sources at the warm home's marts, so ``feast-apply`` runs again in the copy (without it
the copy would materialize the warm home's stale marts). The warehouse and the online store hold no path that is
read again (dbt recreates its views every build).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

MARKER = "loop-warm-up.json"
SKIPPED = ("loop", "tmp", "dbt/target", "dbt/logs")
REWRITTEN = (".json", ".yaml", ".yml", ".txt")
CURRENT = ("CURRENT",)


def build_warm_up(home: Path, service: bool = True) -> dict[str, Any]:
    """Simulate the history window into ``home`` and (``service``) run the daily pipeline on it; writes the marker
    :func:`copy_warm_up` requires. Returns the warm-up's record (date, seconds per step)."""
    from orchestration import pipeline
    from orchestration.loop import configure, daily_steps

    settings = configure(home, None)
    warm = settings.default_run_date
    started = time.perf_counter()
    pipeline.simulate(warm)
    timings = daily_steps(warm, retrain=True, warm_up=True) if service else {}
    record = {
        "day": warm.isoformat(),
        "service": service,
        "home": str(settings.home_dir),
        "seconds": round(time.perf_counter() - started, 1),
        "steps": timings,
    }
    (settings.home_dir / MARKER).write_text(json.dumps(record, indent=2))
    return record


def warm_up_record(warm_home: Path) -> dict[str, Any]:
    marker = warm_home / MARKER
    if not marker.exists():
        raise ValueError(f"{warm_home} holds no finished warm-up ({MARKER}): build it with `shoprank loop --warm-up`")
    return dict(json.loads(marker.read_text()))


def copy_warm_up(warm_home: Path, home: Path, service: bool) -> dict[str, Any]:
    """Copy the warm-up in ``warm_home`` into ``home`` (which must hold no run yet) and point it at ``home``."""
    record = warm_up_record(warm_home)
    if service and not record["service"]:
        raise ValueError(f"{warm_home} holds the simulator's history only: a service policy needs its pipeline too")
    source = Path(record["home"])
    home.mkdir(parents=True, exist_ok=True)
    if any((home / "raw").rglob("*.parquet")):
        raise ValueError(f"{home} already holds raw data: a shared warm-up is copied into an empty home")
    for entry in warm_home.iterdir():
        if entry.name in SKIPPED or entry.name == MARKER:
            continue
        target = home / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, ignore=_ignore(warm_home), symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(entry, target)
    rewritten = _rewrite_paths(home, str(source), str(home.resolve()))
    return {**record, "copied_to": str(home), "files_rewritten": rewritten}


def _ignore(root: Path):  # type: ignore[no-untyped-def]
    def ignore(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).resolve().relative_to(root.resolve())
        return {n for n in names if (relative / n).as_posix() in SKIPPED}

    return ignore


def _rewrite_paths(home: Path, old: str, new: str) -> int:
    """Replace the warm home's path in the copy's text records; returns how many files changed."""
    changed = 0
    for path in home.rglob("*"):
        if not path.is_file() or not (path.suffix in REWRITTEN or path.name in CURRENT):
            continue
        text = path.read_text(errors="strict")
        if old in text:
            path.write_text(text.replace(old, new))
            changed += 1
    return changed
