"""Quarantine, not deletion: a raw partition that fails validation is moved aside with its validation result.

Layout: ``<home>/quarantine/<table>/dt=YYYY-MM-DD/`` holds the partition's files exactly as they were, plus
``validation.json`` (the failed expectations and sample rows). An operator inspects and fixes the parquet in place,
then ``shoprank quarantine release --table T --dt D`` moves it back under the raw folder and the run is re-run.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from shoprank.settings import Settings, get_settings

RESULT_FILE = "validation.json"


def quarantine_path(settings: Settings, table: str, day: date) -> Path:
    return settings.quarantine_dir / table / f"dt={day.isoformat()}"


def raw_partition_dir(settings: Settings, table: str, day: date) -> Path:
    return settings.raw_dir / table / f"dt={day.isoformat()}"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def quarantine_partition(settings: Settings, table: str, day: date, validation: dict[str, Any]) -> Path:
    """Move the raw partition of ``table`` on ``day`` into quarantine and write its validation result beside it.

    A partition already quarantined for the same table and day is kept, renamed with a timestamp suffix.
    """
    source = raw_partition_dir(settings, table, day)
    target = quarantine_path(settings, table, day)
    if target.exists():
        target.rename(target.with_name(f"{target.name}.{_stamp()}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    payload = {"table": table, "dt": day.isoformat(), "quarantined_at": datetime.now(UTC).isoformat(), **validation}
    (target / RESULT_FILE).write_text(json.dumps(payload, indent=2, default=str))
    return target


def list_quarantined(settings: Settings) -> list[dict[str, Any]]:
    """Every quarantined partition: table, day, path, when and which expectations failed."""
    entries = []
    for result in sorted(settings.quarantine_dir.glob(f"*/dt=*/{RESULT_FILE}")):
        body = json.loads(result.read_text())
        entries.append(
            {
                "table": result.parent.parent.name,
                "dt": result.parent.name.removeprefix("dt="),
                "path": str(result.parent),
                "quarantined_at": body.get("quarantined_at"),
                "failed": sorted({f"{f['suite']}: {f['expectation']}" for f in body.get("failures", [])}),
            }
        )
    return entries


def release_partition(settings: Settings, table: str, day: date) -> dict[str, Any]:
    """Move a (fixed) quarantined partition back under the raw folder; its validation result is archived.

    Refuses when the raw folder already holds that partition (nothing is overwritten). The next run validates it.
    """
    source = quarantine_path(settings, table, day)
    if not source.is_dir():
        raise FileNotFoundError(f"no quarantined partition {table} dt={day} under {settings.quarantine_dir}")
    target = raw_partition_dir(settings, table, day)
    if target.exists():
        raise FileExistsError(f"{target} exists: remove or move it before releasing the quarantined partition")
    archive = settings.quality_dir / "released" / f"{table}-dt={day.isoformat()}-{_stamp()}.json"
    archive.parent.mkdir(parents=True, exist_ok=True)
    result = source / RESULT_FILE
    if result.exists():
        shutil.move(str(result), str(archive))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    return {"table": table, "dt": day.isoformat(), "released_to": str(target), "validation_archived_at": str(archive)}


# ---- CLI: `shoprank quarantine list | release` ----------------------------------------------------------------
app = typer.Typer(help="Inspect and release raw partitions that failed validation.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """List quarantined raw partitions and the expectations they failed."""
    typer.echo(json.dumps(list_quarantined(get_settings()), indent=2))


@app.command("release")
def release_command(
    table: Annotated[str, typer.Option(help="raw table, e.g. events")],
    dt: Annotated[str, typer.Option("--dt", help="partition day, YYYY-MM-DD")],
) -> None:
    """Move a fixed partition back under the raw folder (then re-run the day)."""
    try:
        day = date.fromisoformat(dt)
    except ValueError as err:
        raise typer.BadParameter(f"--dt must be YYYY-MM-DD, got {dt!r}") from err
    try:
        typer.echo(json.dumps(release_partition(get_settings(), table, day), indent=2))
    except (FileNotFoundError, FileExistsError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
