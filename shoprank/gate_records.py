"""What the mart gates record and publish checks: the fingerprint of the build they judged, and where each gate
writes its result. The quality stage writes these records, the warehouse's publish step reads them; both import
this module, not each other."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from shoprank.mart_files import build_files
from shoprank.settings import Settings


class GateRecordError(RuntimeError):
    """A build or a gate's record cannot be read."""


def marts_results_path(settings: Settings, run_date: date) -> Path:
    """validate_marts' result for ``run_date``."""
    return settings.quality_dir / f"marts-{run_date.isoformat()}.json"


def drift_report_path(settings: Settings, run_date: date) -> Path:
    """check_drift's report for ``run_date``."""
    return settings.quality_dir / f"drift-{run_date.isoformat()}.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(directory: Path) -> dict[str, dict[str, Any]]:
    """``{file name: {sha256, bytes, rows}}`` of every mart file in ``directory`` (shoprank/mart_files.py: the
    single files, and the day files of the day-partitioned marts, named by their path under ``directory``); a file
    parquet cannot read raises :class:`GateRecordError` naming it."""
    import pyarrow.parquet as pq

    files = {}
    for path in build_files(Path(directory)):
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as exc:
            raise GateRecordError(f"mart file {path} is not readable parquet: {exc}") from exc
        name = path.relative_to(directory).as_posix()
        files[name] = {"sha256": _sha256(path), "bytes": path.stat().st_size, "rows": rows}
    return files


def fingerprint(files: dict[str, dict[str, Any]]) -> str:
    """One digest of a set of files (names and contents): what a gate judged, what a snapshot holds."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return digest.hexdigest()


def build_fingerprint(settings: Settings) -> str:
    """The fingerprint of the current build (the gates record it with their results)."""
    return fingerprint(describe_files(settings.marts_build_dir))
