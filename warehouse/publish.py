"""Publish the marts: after the last gate, the judged build becomes what every reader sees, in one atomic step.

dbt exports each mart to ``settings.marts_build_dir`` as soon as it builds it, before its tests and the gates run,
so nothing reads that area but the gates. ``publish`` copies the build (every mart file, the day-partitioned marts'
day files included: shoprank/mart_files.py) into a new snapshot directory,
``snapshots/<run_date>-<content hash>/``, writes its ``manifest.json`` (files with sha256 and row counts, the run's
day, the gates' results) and then swaps the pointer ``settings.marts_export_dir`` (the symlink
``warehouse/marts``) to it with ``os.replace``, atomic on POSIX: a reader sees the old snapshot or the new one,
never a mix, a half-copied file or nothing. Feast's sources, training, serving and monitoring read the pointer.

It refuses a build the gates have not passed: ``validate_marts`` and ``check_drift`` record the fingerprint of the
build they judged, and the copy is published only if both passed on exactly those bytes (a build changed since,
e.g. by another day's dbt run, must be judged again). A snapshot is named by its content, so publishing the same
build again changes nothing, and a different build of the same day gets a directory of its own. The newest
``settings.published_snapshots_kept`` snapshots stay (the published one always); older ones are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from shoprank.gate_records import (
    GateRecordError,
    build_fingerprint,
    describe_files,
    drift_report_path,
    fingerprint,
    marts_results_path,
)
from shoprank.mart_files import build_files
from shoprank.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# The gates publish waits for, in pipeline order, and how to re-run them.
GATES = ("validate_marts", "check_drift")


class PublishError(GateRecordError):
    """The build cannot be published (not gated, gates failed, changed since they passed, or unreadable)."""


def published_dir(settings: Settings) -> Path | None:
    """The snapshot directory the pointer resolves to now (None before the first publish)."""
    pointer = settings.marts_export_dir
    return pointer.resolve() if pointer.exists() else None


def read_manifest(snapshot: Path) -> dict[str, Any]:
    return json.loads((snapshot / MANIFEST).read_text())


def _gate_results(settings: Settings, run_date: date) -> dict[str, dict[str, Any]]:
    """Each gate's recorded result for ``run_date``; raises naming the gate that did not pass."""
    paths = {
        "validate_marts": marts_results_path(settings, run_date),
        "check_drift": drift_report_path(settings, run_date),
    }
    results = {}
    for gate in GATES:
        path = paths[gate]
        command = f"`shoprank {gate.replace('_', '-')} --run-date {run_date}`"
        if not path.exists():
            raise PublishError(f"publish {run_date}: {gate} has not run on this build (no {path}); run {command}")
        result = json.loads(path.read_text())
        if result.get("success") is not True:
            raise PublishError(f"publish {run_date}: {gate} failed on this build (see {path}); nothing published")
        results[gate] = {
            "success": True,
            "results_path": str(path),
            "build_fingerprint": result.get("build_fingerprint"),
            **({"warned": result.get("warned", [])} if gate == "check_drift" else {}),
        }
    return results


def publish(settings: Settings, run_date: date) -> dict[str, Any]:
    """Publish ``run_date``'s build once every gate passed on it (see the module docstring); returns a summary."""
    gates = _gate_results(settings, run_date)
    current = build_fingerprint(settings)
    for gate, result in gates.items():
        if result["build_fingerprint"] != current:
            raise PublishError(
                f"publish {run_date}: the build changed since {gate} judged it (fingerprint "
                f"{str(result['build_fingerprint'])[:12]} != {current[:12]}, e.g. another day's dbt run): re-run "
                f"the gates (`shoprank validate-marts --run-date {run_date}`, then `check-drift`)"
            )
    return publish_snapshot(settings, run_date, gates, expected=current)


def publish_snapshot(
    settings: Settings, run_date: date, gates: dict[str, Any], expected: str | None = None
) -> dict[str, Any]:
    """Copy the build into a snapshot, write its manifest, swap the pointer to it, prune old snapshots.

    The mechanics behind :func:`publish`, without its gate check (a test world with no gates calls it directly).
    ``expected``: the fingerprint the gates passed; a copy that differs (the build changed while being copied) is
    discarded and nothing is published.
    """
    build, snapshots = settings.marts_build_dir, settings.marts_snapshots_dir
    if not build_files(build):
        raise PublishError(f"publish {run_date}: no mart files in {build}: build the warehouse first")
    snapshots.mkdir(parents=True, exist_ok=True)
    staging = snapshots / f".incoming-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for path in build_files(build):  # single files, and each day file of the day-partitioned marts
            copy = staging / path.relative_to(build)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            with copy.open("rb") as handle:  # on disk before the pointer can name it
                os.fsync(handle.fileno())
        files = describe_files(staging)  # the copy itself, not the build: what readers will get
        digest = fingerprint(files)
        if expected is not None and digest != expected:
            raise PublishError(
                f"publish {run_date}: the build changed while it was copied ({digest[:12]} != {expected[:12]}); "
                "re-run the gates"
            )
        snapshot = snapshots / f"{run_date.isoformat()}-{digest[:12]}"
        if snapshot.exists():  # the same build published before: keep its manifest (idempotent)
            shutil.rmtree(staging)
        else:
            content: dict[str, Any] = {
                "run_date": run_date.isoformat(),
                "snapshot": snapshot.name,
                "fingerprint": digest,
                "published_at": datetime.now(UTC).isoformat(),
                "files": files,
                "gates": gates,
            }
            (staging / MANIFEST).write_text(json.dumps(content, indent=2, sort_keys=True))
            staging.rename(snapshot)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = published_dir(settings)
    _point(settings.marts_export_dir, snapshot)
    removed = _prune(settings, keep=snapshot)
    manifest = read_manifest(snapshot)
    if previous != snapshot:
        log.info("published %s (was %s)", snapshot.name, previous.name if previous else None)
    return {
        "run_date": run_date.isoformat(),
        "snapshot": str(snapshot),
        "previous": str(previous) if previous else None,
        "changed": previous != snapshot,
        "fingerprint": digest,
        "files": _rows_per_mart(manifest["files"]),
        "removed": [p.name for p in removed],
    }


def _rows_per_mart(files: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Rows per mart file name (``<mart>.parquet``), a day-partitioned mart's day files summed under its name."""
    rows: dict[str, int] = {}
    for name, described in files.items():
        mart = name.split("/", 1)[0].removesuffix(".parquet") + ".parquet"
        rows[mart] = rows.get(mart, 0) + described["rows"]
    return rows


def _point(pointer: Path, snapshot: Path) -> None:
    """Make ``pointer`` a relative symlink to ``snapshot``, atomically replacing the previous link."""
    if pointer.is_dir() and not pointer.is_symlink():
        # A home from before publishing existed (dbt wrote the served marts in place), or a copied home: move the
        # directory aside once; from then on the pointer is a symlink and every swap is atomic.
        aside = pointer.with_name(f".{pointer.name}-unpublished-{uuid.uuid4().hex}")
        pointer.rename(aside)
        log.warning("%s was a directory, not a published snapshot: replaced by a pointer to %s", pointer, snapshot)
        shutil.rmtree(aside)
    link = pointer.with_name(f".{pointer.name}-{uuid.uuid4().hex}")
    os.symlink(os.path.relpath(snapshot, pointer.parent), link)
    os.replace(link, pointer)


def _prune(settings: Settings, keep: Path) -> list[Path]:
    """Delete snapshots beyond the newest ``published_snapshots_kept`` (by day, then publication), never ``keep``."""
    found = []
    for folder in settings.marts_snapshots_dir.iterdir():
        if folder.name.startswith(".") or not (folder / MANIFEST).exists():
            continue
        manifest = read_manifest(folder)
        found.append(((manifest["run_date"], manifest["published_at"]), folder))
    kept = {keep}
    for _, folder in sorted(found, reverse=True):
        if len(kept) >= settings.published_snapshots_kept:
            break
        kept.add(folder)
    removed = sorted(folder for _, folder in found if folder not in kept)
    for folder in removed:
        shutil.rmtree(folder)
    return removed
