"""Publishing the marts: a snapshot copy with a manifest, an atomic pointer swap, idempotence and retention.

Small parquet files stand in for a dbt build; the gates' results are written as the gates write them (the real
gates over a real build: tests/data/test_publish.py).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.gate_records import GateRecordError
from shoprank.mart_files import read_mart
from shoprank.settings import Settings
from warehouse.publish import MANIFEST, PublishError, build_fingerprint, publish, publish_snapshot, read_manifest

DAY = date(2026, 1, 7)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home", published_snapshots_kept=3)
    settings.ensure_dirs()
    return settings


def build(settings: Settings, value: int, rows: int = 4) -> dict[str, bytes]:
    """Write a two-mart build whose rows carry ``value``; return its files' bytes."""
    for name in ("item_features", "user_features"):
        table = pa.table({"id": list(range(rows)), "value": [value] * rows})
        pq.write_table(table, settings.marts_build_dir / f"{name}.parquet")
    return {p.name: p.read_bytes() for p in settings.marts_build_dir.glob("*.parquet")}


def served(settings: Settings) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in settings.marts_export_dir.glob("*.parquet")}


def record_gates(settings: Settings, day: date, success: bool = True, fingerprint: str | None = None) -> None:
    """The two gates' result files as validate_marts and check_drift write them."""
    judged = fingerprint or build_fingerprint(settings)
    for path in (settings.quality_dir / f"marts-{day}.json", settings.quality_dir / f"drift-{day}.json"):
        path.write_text(json.dumps({"success": success, "build_fingerprint": judged, "warned": []}))


def test_publish_copies_the_build_with_a_manifest_and_points_the_marts_at_it(settings: Settings) -> None:
    files = build(settings, 1)
    record_gates(settings, DAY)
    summary = publish(settings, DAY)

    pointer = settings.marts_export_dir
    assert pointer.is_symlink() and not os.path.isabs(os.readlink(pointer))  # relative: a moved home still works
    snapshot = pointer.resolve()
    assert snapshot.parent == settings.marts_snapshots_dir and snapshot.name.startswith(f"{DAY}-")
    assert served(settings) == files and str(snapshot) == summary["snapshot"] and summary["changed"]
    manifest = read_manifest(snapshot)
    assert manifest["run_date"] == DAY.isoformat() and manifest["fingerprint"] == build_fingerprint(settings)
    assert set(manifest["files"]) == set(files) and all(f["rows"] == 4 for f in manifest["files"].values())
    assert set(manifest["gates"]) == {"validate_marts", "check_drift"}
    assert all(gate["success"] for gate in manifest["gates"].values())
    # A copy, not a link: dbt rewriting the build in place cannot reach the published bytes.
    with (settings.marts_build_dir / "item_features.parquet").open("r+b") as handle:
        handle.write(b"garbage")
    assert served(settings) == files


def test_a_day_partitioned_mart_is_published_with_every_day_file(settings: Settings) -> None:
    """A day-partitioned mart (a folder of day files, shoprank/mart_files.py) is copied file by file, fingerprinted
    and listed by path; readers of the snapshot read its days; a changed day file is a new build for the gates."""
    build(settings, 1)
    folder = settings.marts_build_dir / "training_examples"
    folder.mkdir()
    for n, day in enumerate((DAY - timedelta(days=1), DAY)):
        pq.write_table(pa.table({"dt": [day] * (n + 2), "id": list(range(n + 2))}), folder / f"dt={day}.parquet")
    record_gates(settings, DAY)
    summary = publish(settings, DAY)

    snapshot = settings.marts_export_dir.resolve()
    days = [f"training_examples/dt={DAY - timedelta(days=1)}.parquet", f"training_examples/dt={DAY}.parquet"]
    assert set(read_manifest(snapshot)["files"]) == {"item_features.parquet", "user_features.parquet", *days}
    assert summary["files"] == {"item_features.parquet": 4, "user_features.parquet": 4, "training_examples.parquet": 5}
    for name in days:
        assert (snapshot / name).read_bytes() == (settings.marts_build_dir / name).read_bytes()
    assert read_mart(settings.marts_export_dir, "training_examples")["id"].tolist() == [0, 1, 0, 1, 2]
    judged = build_fingerprint(settings)
    pq.write_table(pa.table({"dt": [DAY], "id": [9]}), folder / f"dt={DAY}.parquet")
    assert build_fingerprint(settings) != judged


def test_publishing_the_same_build_again_changes_nothing(settings: Settings) -> None:
    build(settings, 1)
    record_gates(settings, DAY)
    first = publish(settings, DAY)
    manifest = (Path(first["snapshot"]) / MANIFEST).read_bytes()
    link = os.readlink(settings.marts_export_dir)

    again = publish(settings, DAY)
    assert again["snapshot"] == first["snapshot"] and again["changed"] is False
    assert (Path(again["snapshot"]) / MANIFEST).read_bytes() == manifest
    assert os.readlink(settings.marts_export_dir) == link
    assert [p.name for p in settings.marts_snapshots_dir.iterdir()] == [Path(first["snapshot"]).name]


def test_a_new_build_of_the_same_day_gets_its_own_snapshot(settings: Settings) -> None:
    build(settings, 1)
    first = publish_snapshot(settings, DAY, gates={})
    fixed = build(settings, 2)
    second = publish_snapshot(settings, DAY, gates={})
    assert second["snapshot"] != first["snapshot"] and second["previous"] == first["snapshot"]
    assert served(settings) == fixed and Path(first["snapshot"]).exists()


def test_only_the_newest_snapshots_are_kept(settings: Settings) -> None:
    published = []
    for offset in range(5):
        build(settings, offset)
        published.append(publish_snapshot(settings, DAY + timedelta(days=offset), gates={})["snapshot"])
    kept = sorted(str(p) for p in settings.marts_snapshots_dir.iterdir())
    assert kept == sorted(published[-3:])  # published_snapshots_kept = 3, the served one among them
    assert str(settings.marts_export_dir.resolve()) == published[-1]


def test_publish_refuses_a_build_the_gates_did_not_pass(settings: Settings) -> None:
    build(settings, 1)
    with pytest.raises(PublishError, match="validate_marts has not run"):
        publish(settings, DAY)
    record_gates(settings, DAY, success=False)
    with pytest.raises(PublishError, match="validate_marts failed"):
        publish(settings, DAY)
    record_gates(settings, DAY)
    build(settings, 99)  # dbt rebuilt after the gates judged the build
    with pytest.raises(PublishError, match="the build changed since validate_marts judged it"):
        publish(settings, DAY)
    assert not settings.marts_export_dir.exists() and not list(settings.marts_snapshots_dir.iterdir())


def test_a_failed_publish_leaves_the_published_snapshot_and_no_debris(settings: Settings) -> None:
    files = build(settings, 1)
    publish_snapshot(settings, DAY, gates={})
    link = os.readlink(settings.marts_export_dir)
    (settings.marts_build_dir / "item_features.parquet").write_bytes(b"half a parquet file")
    with pytest.raises(GateRecordError, match="item_features.parquet is not readable parquet"):
        publish_snapshot(settings, DAY + timedelta(days=1), gates={})
    assert os.readlink(settings.marts_export_dir) == link and served(settings) == files
    assert len(list(settings.marts_snapshots_dir.iterdir())) == 1  # no half-made snapshot left behind


def test_a_marts_directory_from_before_publishing_becomes_the_pointer(settings: Settings) -> None:
    settings.marts_export_dir.mkdir()
    (settings.marts_export_dir / "item_features.parquet").write_bytes(b"unpublished")
    files = build(settings, 1)
    publish_snapshot(settings, DAY, gates={})
    assert settings.marts_export_dir.is_symlink() and served(settings) == files
    assert [p.name for p in settings.marts_export_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_readers_see_one_whole_snapshot_or_the_other_during_swaps(settings: Settings) -> None:
    """A reader opening the marts through the pointer while snapshots are swapped never finds them missing or
    mixed: each read returns one of the two published builds' bytes."""
    builds = [build(settings, 1, rows=50), build(settings, 2, rows=50)]
    publish_snapshot(settings, DAY, gates={})
    seen: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                folder = settings.marts_export_dir.resolve()  # as serving does: one snapshot per load
                seen.append(
                    ((folder / "item_features.parquet").read_bytes(), (folder / "user_features.parquet").read_bytes())
                )
            except BaseException as exc:  # noqa: BLE001 - any failure to read is what this test looks for
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(40):
            build(settings, 1 + i % 2, rows=50)
            publish_snapshot(settings, DAY, gates={})
    finally:
        done.set()
        reader.join()
    assert not errors, errors[:3]
    whole = {(b["item_features.parquet"], b["user_features.parquet"]) for b in builds}
    assert seen and set(seen) <= whole
