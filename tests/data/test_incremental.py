"""The marts are incremental by day: data arriving one day at a time, built one run per day, gives exactly the marts
of one run over all days, and a backfill of an earlier day rewrites only the partitions that day owns."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from producers.simulator import simulate
from shoprank.mart_files import (
    DAY_PARTITIONED_FEATURE_MARTS,
    DAY_PARTITIONED_MARTS,
    build_files,
    day_file,
    file_day,
    mart_files,
    read_mart,
    sql_files,
)
from shoprank.raw_contract import partition_path
from shoprank.settings import Settings
from warehouse.build import (
    EXPORTED_MARTS,
    UNIT_TESTS_PASSED,
    WarehouseBuildError,
    build_warehouse,
    raw_file_states,
    relanded_from,
    unit_tests_fingerprint,
)

from .conftest import RUN_DATE, TINY, tiny_settings

DAYS = [RUN_DATE - timedelta(days=2), RUN_DATE - timedelta(days=1), RUN_DATE]


def _land_raw_up_to(source: Path, target: Path, day: date) -> None:
    """Copy the raw partitions dt <= day, as the daily pipeline would have them after simulating that day."""
    for table in source.iterdir():
        for partition in table.glob("dt=*"):
            landed = target / table.name / partition.name
            if date.fromisoformat(partition.name.removeprefix("dt=")) <= day and not landed.exists():
                shutil.copytree(partition, landed)


def _build_models(settings: Settings, day: date) -> None:
    """Build the models only, without the dbt tests (the runs whose marts are checked in full run them)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBT_INDIRECT_SELECTION", "empty")
        build_warehouse(settings, day, select="resource_type:model")


def _exports(settings: Settings) -> dict[str, bytes]:
    """Every exported mart's bytes by name; a day-partitioned mart's day files each under <mart>/dt=...parquet."""
    build = settings.marts_build_dir
    exports = {path.relative_to(build).as_posix(): path.read_bytes() for path in build_files(build)}
    assert {name.split("/")[0].removesuffix(".parquet") for name in exports} == set(EXPORTED_MARTS)
    return exports


def _mart(settings: Settings, name: str) -> pd.DataFrame:
    return read_mart(settings.marts_build_dir, name)


def _table_days(settings: Settings, name: str) -> set[date]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return {row[0] for row in con.execute(f"select distinct dt from {name}").fetchall()}


def _file_states(settings: Settings) -> dict[str, tuple[int, bytes]]:
    """(mtime in ns, bytes) of every day file of the day-partitioned marts."""
    return {
        path.relative_to(settings.marts_build_dir).as_posix(): (path.stat().st_mtime_ns, path.read_bytes())
        for name in DAY_PARTITIONED_MARTS
        for path in mart_files(settings.marts_build_dir, name)
    }


@pytest.fixture(scope="module")
def day_files_before_each_run() -> dict[date, dict[str, tuple[int, bytes]]]:
    """Filled by day_by_day: the day-partitioned marts' files (mtime, bytes) just before each day's run."""
    return {}


@pytest.fixture(scope="module")
def day_by_day(
    warehouse: dict,
    tmp_path_factory: pytest.TempPathFactory,
    day_files_before_each_run: dict[date, dict[str, tuple[int, bytes]]],
) -> Settings:
    """The session's raw data landed one day at a time, with one warehouse run per day (D-2, D-1, D); the last
    run is a whole `dbt build`, its tests included."""
    source: Settings = warehouse["settings"]
    settings = tiny_settings(tmp_path_factory.mktemp("day-by-day-home"))
    for day in DAYS:
        _land_raw_up_to(source.raw_dir, settings.raw_dir, day)
        day_files_before_each_run[day] = _file_states(settings)
        time.sleep(0.01)  # a file rewritten by this run gets a later mtime than any before it
        if day == DAYS[-1]:
            build_warehouse(settings, day)
        else:
            _build_models(settings, day)
    return settings


def test_day_by_day_runs_equal_one_run_of_the_last_day(warehouse: dict, day_by_day: Settings) -> None:
    # The straight run (the session warehouse) built every day at once from the same raw data.
    straight = _exports(warehouse["settings"])
    incremental = _exports(day_by_day)
    assert sorted(incremental) == sorted(straight)
    assert [name for name in straight if incremental[name] != straight[name]] == []
    # Not trivially equal: the first run could not have seen the later days.
    dts = _mart(day_by_day, "user_features")["dt"]
    assert dts.max() == RUN_DATE + timedelta(days=1) and dts.nunique() == 5


def test_the_next_day_writes_only_the_days_it_rewrote(
    day_by_day: Settings, day_files_before_each_run: dict[date, dict[str, tuple[int, bytes]]]
) -> None:
    """D's run (after D-1's) rewrites the impression day D, and D-1 only for an outcome after midnight, of which the
    test world has none: the large marts' export writes D's day file and leaves every older day's file alone,
    D-1's included, untouched on disk (same mtime, same bytes; the day spine starts at D: run_start). A feature mart
    rewrites feature days D (written by D-1's run as its serving snapshot, now with D's stock and the whole of D-1's
    events) and D + 1, new: D's file is written again, D + 1's appears, older ones stay; user_category_features,
    whose feature day D counts only events before D, writes D + 1 alone."""
    before, after = day_files_before_each_run[RUN_DATE], _file_states(day_by_day)
    for name in DAY_PARTITIONED_MARTS:
        feature_mart = name in DAY_PARTITIONED_FEATURE_MARTS
        rewritten = {RUN_DATE, RUN_DATE + timedelta(days=1)} if feature_mart else {RUN_DATE}
        if name == "user_category_features":
            rewritten = {RUN_DATE + timedelta(days=1)}
        newest = max(rewritten)
        days = {file_day(path) for path in mart_files(day_by_day.marts_build_dir, name)}
        assert days == _table_days(day_by_day, name), name  # a file per day of the table, and no other
        # the world's four days; a feature mart's from D-3 (user_category_features: D-2, D-3's window is empty) on
        assert max(days) == newest and min(days) in (RUN_DATE - timedelta(days=3), RUN_DATE - timedelta(days=2))
        for day in sorted(days):
            key = day_file(day_by_day.marts_build_dir, name, day).relative_to(day_by_day.marts_build_dir).as_posix()
            if day in rewritten:
                assert key not in before or after[key][0] > before[key][0], key  # written by D's run
                if feature_mart and day == RUN_DATE:
                    assert key in before, key  # D-1's run wrote it: D's rewrote it
            else:
                assert after[key] == before[key], key  # neither written nor changed
        assert not (day_by_day.marts_build_dir / f"{name}.parquet").exists(), name  # no whole-mart file besides
    # The table's rewrite deletes day D by name (row groups skipped by min/max), not by a join on new rows; D-1 is
    # not rewritten whole (no outcome of the test world lands after midnight: nothing of D-1 is relabelled).
    run_sql = day_by_day.dbt_artifacts_dir / "run" / "shoprank" / "models" / "marts" / "training_examples.sql"
    run = " ".join(run_sql.read_text().split())
    assert f"where dt in (date '{RUN_DATE}');" in run
    assert f"date '{RUN_DATE - timedelta(days=1)}'" not in run
    # user_category_features computes and deletes feature day D + 1 alone (feature day D stays as D-1's run wrote it)
    run_sql = run_sql.with_name("user_category_features.sql")
    run = " ".join(run_sql.read_text().split())
    assert f"where dt in (date '{RUN_DATE + timedelta(days=1)}');" in run
    compiled = day_by_day.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / "marts" / run_sql.name
    assert f"feature_date >= date '{RUN_DATE + timedelta(days=1)}'" in compiled.read_text()


def test_the_daily_tests_of_a_snapshot_mart_check_the_snapshot_the_run_wrote(day_by_day: Settings) -> None:
    """A model's config run_partition_offset moves its daily data tests' first partition (__run_partitions__: the
    spine's first day, D, + the offset): the retrieval marts and user_category_features, whose run writes the
    serving snapshot D + 1 alone, test that one (D's was tested by D-1's run); the other marts (offset 0) from D."""
    compiled = day_by_day.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / "marts"
    scoped = re.compile(r'\(select \* from "[^"]+"\."[^"]+"\."(\w+)" where ([^)]*)\) dbt_subquery')
    wheres: dict[str, set[str]] = {}
    for path in compiled.glob("*.yml/*.sql"):
        for model, where in scoped.findall(path.read_text()):
            wheres.setdefault(model, set()).add(where.strip())
    serving_day = RUN_DATE + timedelta(days=1)
    for model in ("retrieval_covisitation", "retrieval_user_recent", "retrieval_trending"):
        assert wheres[model] == {f"snapshot_date >= date '{serving_day}'"}, model
    assert wheres["user_category_features"] == {f"dt >= date '{serving_day}'"}
    for model in ("training_examples", "user_features", "item_window_features"):
        assert wheres[model] == {f"dt >= date '{RUN_DATE}'"}, model


def test_the_next_day_drops_a_relanded_id_and_relabels_only_late_outcomes_impressions(
    day_by_day: Settings, tmp_path: Path
) -> None:
    """D's raw partition re-lands with two additions: a copy of a click of D-1 (same event id, same row) and a click
    just after midnight on an unclicked impression of D-1 (a request across midnight). D's run again reads D's raw
    partition alone; the copied id is dropped against stg_events' stored D-1 rows (an anti-join on that one stored
    day: a full build keeps the earliest partition's copy); training_examples writes D whole and, of D-1, only the
    impression the late click labels (replaced by impression_id). Every mart's export is byte-identical to one run
    of D over the same raw data (a kept copy would count the click twice in the windows; a relabelled row added
    beside its stored twin would repeat the impression)."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    previous = RUN_DATE - timedelta(days=1)
    earlier = pq.read_table(partition_path(settings.raw_dir, "events", previous))
    click = earlier.filter(pc.equal(earlier["event_type"], "click")).slice(0, 1)
    copied_id = click["event_id"][0].as_py()
    examples = _mart(settings, "training_examples")
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    events = pq.read_table(path)
    late_click = _late_click(settings, events, RUN_DATE)
    pq.write_table(pa.concat_tables([events, click.select(events.column_names).cast(events.schema), late_click]), path)

    build_warehouse(settings, RUN_DATE)

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        kept = con.execute("select dt from stg_events where event_id = ?", [copied_id]).fetchall()
        per_day = con.execute("select count(*) from stg_events where dt = ?", [RUN_DATE]).fetchone()
    assert kept == [(previous,)]
    assert per_day is not None and per_day[0] == events.num_rows + 1  # the late click, not the copy
    compiled = settings.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / "staging" / "stg_events.sql"
    assert set(re.findall(r"/events/dt=([0-9-]+)/", compiled.read_text())) == {RUN_DATE.isoformat()}
    run_sql = settings.dbt_artifacts_dir / "run" / "shoprank" / "models" / "marts" / "training_examples.sql"
    run = " ".join(run_sql.read_text().split())
    assert f"where dt in (date '{RUN_DATE}');" in run
    assert f"where dt = date '{previous}' and impression_id in ( select impression_id from" in run
    relabelled = _mart(settings, "training_examples").set_index("impression_id")
    assert relabelled.loc[_impression_of(late_click), "label_click"] == 1
    assert (relabelled["dt"] == previous).sum() == (examples["dt"] == previous).sum()

    _exports_equal_to_a_full_build(settings, tmp_path)


def test_a_late_outcome_in_the_new_day_relabels_the_day_before(warehouse: dict, tmp_path: Path) -> None:
    """Day D lands (for the first time, not re-landed) with a click just after midnight on an unclicked impression of
    D-1: D's run finds it (macros/incremental.sql: relabels_day_before), so its day spine starts at D-1 and D-1's
    training_examples day file is written again with the impression labelled."""
    settings = tiny_settings(tmp_path / "home")
    _land_raw_up_to(warehouse["settings"].raw_dir, settings.raw_dir, DAYS[1])
    _build_models(settings, DAYS[1])
    _land_raw_up_to(warehouse["settings"].raw_dir, settings.raw_dir, RUN_DATE)
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    events = pq.read_table(path)
    late_click = _late_click(settings, events, RUN_DATE)
    pq.write_table(pa.concat_tables([events, late_click]), path)

    _build_models(settings, RUN_DATE)

    examples = _mart(settings, "training_examples").set_index("impression_id")
    assert examples.loc[_impression_of(late_click), "label_click"] == 1


def test_relanded_from_names_the_earliest_day_whose_raw_content_changed(tmp_path: Path) -> None:
    """The last build's list against the raw files now: a partition rewritten with the same bytes (the simulator
    rewrites its window every day) is not re-landed, nor is a day newer than the list's newest (new data); changed
    content, or a file added or removed on a day the list had seen, is, and the earliest such day is named. A file
    with the listed mtime and size keeps its listed digest (not read again)."""
    settings = tiny_settings(tmp_path / "home")
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(4)]
    for day in days[:3]:
        for table in ("events", "users"):
            path = partition_path(settings.raw_dir, table, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{table} {day}".encode())
    built = raw_file_states(settings)
    assert relanded_from(None, built) is None  # no list: a first build
    assert relanded_from(built, raw_file_states(settings, built)) is None

    for day in days[:3]:  # the same bytes again, a later mtime
        path = partition_path(settings.raw_dir, "events", day)
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    new_day = partition_path(settings.raw_dir, "events", days[3])
    new_day.parent.mkdir(parents=True)
    new_day.write_bytes(b"the next day")
    assert relanded_from(built, raw_file_states(settings, built)) is None

    partition_path(settings.raw_dir, "users", days[2]).write_bytes(b"corrected")
    assert relanded_from(built, raw_file_states(settings, built)) == days[2]
    partition_path(settings.raw_dir, "events", days[1]).unlink()
    assert relanded_from(built, raw_file_states(settings, built)) == days[1]

    # a listed digest is trusted while mtime and size match: the file is not read
    unread = raw_file_states(settings)
    path = partition_path(settings.raw_dir, "events", days[0])
    stat = path.stat()
    path.write_bytes(b"X" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert raw_file_states(settings, unread) == unread
    assert (
        raw_file_states(settings)[path.relative_to(settings.raw_dir).as_posix()][2]
        != unread[path.relative_to(settings.raw_dir).as_posix()][2]
    )


def test_a_corrected_older_partition_is_picked_up_by_the_next_run(day_by_day: Settings, tmp_path: Path) -> None:
    """D-2's raw partitions (events and inventory) re-land corrected after D's build; D's run again, with no
    backfill asked, finds them changed (their sha256: warehouse.build.relanded_from), rewrites from D-2 on, and its
    marts equal one run of D over the corrected raw data (a run that rewrote only D would keep the old D-2)."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    before = _exports(settings)
    _correct_raw_partition(settings, DAYS[0])

    summary = build_warehouse(settings, RUN_DATE)

    assert summary["relanded_from"] == DAYS[0].isoformat()
    after = _exports_equal_to_a_full_build(settings, tmp_path)
    users = {name: after[name] for name in after if name.startswith("user_features/")}
    assert users and users != {name: before.get(name) for name in users}
    # The next run finds nothing re-landed: it keeps the raw files' state this run read.
    assert build_warehouse(settings, RUN_DATE)["relanded_from"] is None


def test_each_days_run_reuses_dbts_parse(day_by_day: Settings) -> None:
    """The run's day reaches dbt in the environment (warehouse.build.dbt_env), not as a changed `--vars`: only the
    first of the three daily runs parses the project; D-1's and D's reuse the saved parse (partial parsing), while
    the marts they wrote still follow their own day (the equality test above)."""
    log = (day_by_day.home_dir / "dbt" / "logs" / "dbt.log").read_text()
    runs = re.split(r"\n=+ [0-9:.]+ \| [0-9a-f-]+ =+\n", log)[1:][: len(DAYS)]  # later tests run it again
    assert len(runs) == len(DAYS)
    assert "Unable to do partial parsing because saved manifest not found" in runs[0]
    for day, run in zip(DAYS[1:], runs[1:], strict=True):
        assert "Unable to do partial parsing" not in run, day  # said at info level, unlike "Partial parsing enabled"
        assert "'run_date'" not in run, day  # no day among dbt's vars


def test_an_id_repeated_within_the_new_day_is_kept_once_the_latest(day_by_day: Settings, tmp_path: Path) -> None:
    """stg_events deduplicates within the day it reads too (an ungated raw day: the raw gate would refuse it):
    D's raw partition re-lands holding one impression twice, the copy a second earlier. D's run keeps one row for
    that id, the later one (latest event_ts within a partition), and the day's row count is the partition's
    distinct ids."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    events = pq.read_table(path)
    impression = events.filter(pc.equal(events["event_type"], "impression")).slice(0, 1)
    repeated_id, kept_ts = impression["event_id"][0].as_py(), impression["event_ts"][0].as_py()
    column = events.schema.get_field_index("event_ts")
    earlier = impression.set_column(
        column, "event_ts", pa.array([kept_ts - timedelta(seconds=1)], type=events.schema.field("event_ts").type)
    )
    pq.write_table(pa.concat_tables([earlier.cast(events.schema), events]), path)

    build_warehouse(settings, RUN_DATE)

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        stored = con.execute("select event_ts from stg_events where event_id = ?", [repeated_id]).fetchall()
        per_day = con.execute("select count(*) from stg_events where dt = ?", [RUN_DATE]).fetchone()
    assert [ts for (ts,) in stored] == [kept_ts]
    assert per_day == (events.num_rows,)


def test_a_bad_row_in_the_new_day_fails_the_daily_run(day_by_day: Settings, tmp_path: Path) -> None:
    """The daily run's data tests check only the partitions it rewrites (dbt_project.yml: __run_partitions__), which
    hold the new day: D's run again, on a copy of the home whose raw day D repeats one impression under another
    event id (same request, same item), fails on training_examples' unique (request_id, item_id) test, and the
    error names it."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    events = pq.read_table(path)
    impression = events.filter(pc.equal(events["event_type"], "impression")).slice(0, 1)
    column = events.schema.get_field_index("event_id")
    twin = impression.set_column(column, "event_id", pa.array(["twin-of-an-impression"]))
    pq.write_table(pa.concat_tables([events, twin.cast(events.schema)]), path)

    with pytest.raises(WarehouseBuildError) as failed:
        build_warehouse(settings, RUN_DATE)

    names = [node for node, _, _ in failed.value.failures]
    assert any(
        name.startswith("test.shoprank.unique_combination_of_columns_training_examples_request_id__item_id")
        for name in names
    ), names


def test_a_bad_row_in_an_old_day_is_left_to_a_run_over_every_day(day_by_day: Settings, tmp_path: Path) -> None:
    """The daily run's data tests read the days it rewrote, not the stored ones: an impression of D-2 repeated in
    the warehouse's training_examples table (a row no run of D writes) passes D's run again, whose tests check
    day D alone (the spine starts at D: nothing of D-1 is relabelled); a run without a run day, which tests every
    partition as a full build does, fails on it."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("insert into training_examples select * from training_examples where dt = ? limit 1", [DAYS[0]])

    build_warehouse(settings, RUN_DATE)

    compiled = settings.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / "marts" / "training_examples.yml"
    tests = " ".join(path.read_text() for path in compiled.glob("unique_training_examples_impression_id*.sql"))
    assert f"dt >= date '{RUN_DATE}'" in tests
    with pytest.raises(WarehouseBuildError) as failed:
        build_warehouse(settings, None)
    names = [node for node, _, _ in failed.value.failures]
    assert any(name.startswith("test.shoprank.unique_training_examples_impression_id") for name in names), names


def _not_null_failures(failed: WarehouseBuildError, model: str) -> list[str]:
    """The messages of the failed not_null_columns test of ``model`` (one test node for all its not-null columns)."""
    prefix = f"test.shoprank.not_null_columns_{model}_"
    return [message for node, _, message in failed.failures if node.startswith(prefix)]


@pytest.mark.parametrize("column_name", ["request_id", "event_id"])
def test_a_null_in_the_new_day_fails_its_models_not_null_test_naming_the_column(
    day_by_day: Settings, tmp_path: Path, column_name: str
) -> None:
    """Each model's not-null columns are one test node (tests/generic/not_null_columns.sql): D's run again, on a copy
    of the home whose raw day D has one impression without a request id, fails on stg_events' not-null test (which
    `dbt build` runs before the marts), and the failure names the column and its count of nulls, not just the
    test. The same for an event id: the raw source has no tests of its own (the raw gate and this one cover it)."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    path = partition_path(settings.raw_dir, "events", RUN_DATE)
    events = pq.read_table(path)
    first_impression = pc.index(events["event_type"], "impression").as_py()
    values = events[column_name].to_pylist()
    values[first_impression] = None
    column = events.schema.get_field_index(column_name)
    pq.write_table(events.set_column(column, events.schema.field(column), pa.array(values)), path)

    with pytest.raises(WarehouseBuildError) as failed:
        build_warehouse(settings, RUN_DATE)

    messages = _not_null_failures(failed.value, "stg_events")
    assert [message.split("; first failing rows: ")[1] for message in messages] == [
        f"column_name={column_name}, null_rows=1"
    ], failed.value.failures
    assert f"column_name={column_name}, null_rows=1" in str(failed.value)


def test_a_null_in_an_old_day_is_left_to_a_run_over_every_day(day_by_day: Settings, tmp_path: Path) -> None:
    """The merged not-null test keeps the daily scope of the marts' tests (__run_partitions__): a null user id
    planted in D-2 of the warehouse's training_examples passes D's run again, whose not-null test reads day D alone;
    a run without a run day, which tests every partition, fails on it and names the column."""
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "update training_examples set user_id = null where impression_id = "
            "(select min(impression_id) from training_examples where dt = ?)",
            [DAYS[0]],
        )

    build_warehouse(settings, RUN_DATE)

    compiled = settings.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / "marts" / "training_examples.yml"
    tests = [path.read_text() for path in compiled.rglob("*.sql") if "count(*) - count(user_id)" in path.read_text()]
    assert len(tests) == 1 and f"dt >= date '{RUN_DATE}'" in tests[0]
    with pytest.raises(WarehouseBuildError) as failed:
        build_warehouse(settings, None)
    messages = _not_null_failures(failed.value, "training_examples")
    assert len(messages) == 1 and messages[0].endswith("first failing rows: column_name=user_id, null_rows=1")


def test_the_daily_run_skips_the_unit_tests_already_passed_on_the_same_project(
    day_by_day: Settings, tmp_path: Path
) -> None:
    """dbt's unit tests check the models' SQL on fixed fixtures, not the day's data: D's whole build ran them and
    recorded the project's fingerprint, so D's run again (a copy of the home) excludes them and still runs every
    model and data test; a fingerprint that differs (a changed model, macro or yml) runs them again and records the
    new one. The fingerprint follows the project's files."""
    marker = day_by_day.dbt_artifacts_dir.parent / UNIT_TESTS_PASSED
    assert marker.read_text().strip() == unit_tests_fingerprint(day_by_day)  # D's whole build ran and passed them
    settings = tiny_settings(tmp_path / "home")
    shutil.copytree(day_by_day.home_dir, settings.home_dir, dirs_exist_ok=True)

    again = build_warehouse(settings, RUN_DATE)
    assert again["unit_tests_skipped"] is True
    assert "unit_test" not in again["resource_types"]
    assert again["resource_types"]["model"] >= 13 and again["resource_types"]["test"] > 50

    (settings.dbt_artifacts_dir.parent / UNIT_TESTS_PASSED).write_text("another project's fingerprint\n")
    changed = build_warehouse(settings, RUN_DATE)
    assert changed["unit_tests_skipped"] is False
    assert changed["resource_types"]["unit_test"] >= 4
    assert (settings.dbt_artifacts_dir.parent / UNIT_TESTS_PASSED).read_text().strip() == unit_tests_fingerprint(
        settings
    )

    project = tmp_path / "project"
    shutil.copytree(settings.dbt_project_dir, project / "dbt_project")
    copied = settings.model_copy(update={"project_root": project})
    assert unit_tests_fingerprint(copied) == unit_tests_fingerprint(settings)
    model = project / "dbt_project" / "models" / "marts" / "retrieval_covisitation.sql"
    model.write_text(model.read_text() + "\n")
    assert unit_tests_fingerprint(copied) != unit_tests_fingerprint(settings)


def test_day_files_read_as_the_whole_mart_file(day_by_day: Settings, tmp_path: Path) -> None:
    """Read together, a day-partitioned mart's day files give the rows, order, columns and types of the single
    sorted file the export wrote before (here written again from the warehouse table), in pandas and in DuckDB."""
    order = {
        "training_examples": "dt, request_id, position, impression_id",
        "query_item_match": "dt, request_id, impression_id",
        "user_features": "dt, user_id",
        "user_category_features": "dt, user_id, category_id",
        "user_window_features": "dt, user_id",
        "item_window_features": "dt, item_id",
        "seller_features": "dt, seller_id",
    }
    assert set(order) == set(DAY_PARTITIONED_MARTS)
    with duckdb.connect(str(day_by_day.warehouse_path), read_only=True) as con:
        for name in DAY_PARTITIONED_MARTS:
            single = tmp_path / f"{name}.parquet"
            con.execute(f"copy (select * from {name} order by {order[name]}) to '{single}' (format parquet)")
            files = mart_files(day_by_day.marts_build_dir, name)
            assert len(files) == len(_table_days(day_by_day, name)) >= 4, name
            assert all(pq.read_schema(path) == pq.read_schema(single) for path in files), name
            whole = pd.read_parquet(single)
            assert len(whole) > 0
            pd.testing.assert_frame_equal(_mart(day_by_day, name), whole, obj=name)
            assert (
                con.execute(f"select * from read_parquet({sql_files(files)})")
                .df()
                .equals(con.execute(f"select * from read_parquet('{single}')").df())
            ), name


def _exports_equal_to_a_full_build(settings: Settings, tmp_path: Path) -> dict[str, bytes]:
    """Asserts every export of ``settings``' home equals, byte for byte, one build of RUN_DATE over the same raw
    data in a fresh home; returns the home's exports."""
    straight = tiny_settings(tmp_path / "straight")
    shutil.copytree(settings.raw_dir, straight.raw_dir, dirs_exist_ok=True)
    _build_models(straight, RUN_DATE)
    after, expected = _exports(settings), _exports(straight)
    assert sorted(after) == sorted(expected)
    assert [name for name in expected if after[name] != expected[name]] == []
    return after


def _late_click(settings: Settings, events: pa.Table, day: date) -> pa.Table:
    """One click just after day's midnight on an unclicked impression of the day before, shown to a user who also
    has impressions in ``events`` (day's events), so their day keeps more impressions than clicks (a gate checks it).
    Its event_id is ``late-<impression_id>``."""
    examples = _mart(settings, "training_examples")
    active = set(events.filter(pc.equal(events["event_type"], "impression"))["user_id"].to_pylist())
    unclicked = examples[(examples["dt"] == day - timedelta(days=1)) & (examples["label_click"] == 0)]
    late = unclicked[unclicked["user_id"].isin(active)].iloc[0]
    return pa.Table.from_pylist(
        [
            {
                "event_id": f"late-{late.impression_id}",
                "event_ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(seconds=5),
                "event_type": "click",
                "user_id": late.user_id,
                "item_id": late.item_id,
                "request_id": late.request_id,
                "surface": late.surface,
            }
        ],
        schema=events.schema,
    )


def _impression_of(late_click: pa.Table) -> str:
    """The impression id a _late_click clicks."""
    return str(late_click["event_id"][0].as_py()).removeprefix("late-")


def _correct_raw_partition(settings: Settings, day: date) -> str:
    """Re-land day's raw partition corrected: half its requests removed, the stock snapshot of day 00:00 raised by
    1000, and a late click (just after midnight) on an unclicked impression of the day before, whose id it returns."""
    path = partition_path(settings.raw_dir, "events", day)
    events = pq.read_table(path)
    dropped = pa.array(pc.unique(events["request_id"]).to_pylist()[::2])
    events = events.filter(pc.invert(pc.is_in(events["request_id"], dropped)))
    click = _late_click(settings, events, day)
    pq.write_table(pa.concat_tables([events, click]), path)
    path = partition_path(settings.raw_dir, "inventory", day)
    inventory = pq.read_table(path)
    stock = inventory.column_names.index("stock_units")
    pq.write_table(inventory.set_column(stock, "stock_units", pc.add(inventory["stock_units"], 1000)), path)
    return _impression_of(click)


def test_backfill_rewrites_only_the_partitions_of_its_day(day_by_day: Settings) -> None:
    """A corrected raw partition of D-2, then a re-run of D-2: the feature days it owns (D-2, D-1) and impression
    days (D-3, D-2) reflect the correction; every other partition keeps its rows (days D and D+1 still count the
    removed events: a backfill leaves later days to their own runs)."""
    settings = day_by_day
    day = DAYS[0]
    before = {name: _mart(settings, name) for name in EXPORTED_MARTS}
    impression_marts = ("training_examples", "query_item_match")
    feature_marts = [n for n in EXPORTED_MARTS if n not in impression_marts and not n.startswith("retrieval_")]
    owned = {name: {day, day + timedelta(days=1)} for name in feature_marts}
    owned.update({name: {day - timedelta(days=1), day} for name in impression_marts})
    # Feature day D-3 precedes the backfill's: its rows, deleted here, must stay deleted (a run that rewrote
    # every partition up to its own would bring them back with identical values).
    older = day - timedelta(days=1)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        for name in feature_marts:
            deleted = con.execute(f"delete from {name} where dt = ?", [older]).fetchone()
            assert deleted is not None and deleted[0] == (before[name]["dt"] == older).sum(), name
    assert (before["item_features"]["dt"] == older).sum() > 0
    late_impression = _correct_raw_partition(settings, day)

    build_warehouse(settings, day)

    after = {name: _mart(settings, name) for name in EXPORTED_MARTS}
    for name in EXPORTED_MARTS:
        if name.startswith("retrieval_"):  # one snapshot per run; the export keeps the newest (from run D)
            pd.testing.assert_frame_equal(after[name], before[name], obj=name)
            continue
        old, new = before[name], after[name]
        if name in feature_marts:
            assert not (new["dt"] == older).any(), name
            old = old[old["dt"] != older]
        kept = old[~old["dt"].isin(owned[name])].reset_index(drop=True)
        pd.testing.assert_frame_equal(new[~new["dt"].isin(owned[name])].reset_index(drop=True), kept, obj=name)

    # Every owned partition was rewritten from the corrected raw data: the day's impressions...
    examples, events = after["training_examples"], pq.read_table(partition_path(settings.raw_dir, "events", day))
    impressions = set(events.filter(pc.equal(events["event_type"], "impression"))["event_id"].to_pylist())
    assert set(examples.loc[examples["dt"] == day, "impression_id"]) == impressions
    assert (before["training_examples"]["dt"] == day).sum() > len(impressions)
    # ... the day before's impression the late click labels (and only it) ...
    previous = day - timedelta(days=1)
    old, new = (
        frame[frame["dt"] == previous].set_index("impression_id") for frame in (before["training_examples"], examples)
    )
    assert new.index[(new != old).any(axis=1)].tolist() == [late_impression]
    assert new.loc[late_impression, "label_click"] == 1
    # ... the stock snapshot taken at the day's 00:00 (feature day D-2) ...
    stock = {
        frame: frame_rows.loc[frame_rows["dt"] == day].set_index("item_id")["item_stock_units"]
        for frame, frame_rows in (("before", before["item_features"]), ("after", after["item_features"]))
    }
    assert stock["after"].notna().any()
    pd.testing.assert_series_equal(stock["after"], stock["before"] + 1000)
    # ... and the windows of the next feature day (D-1), which now miss the removed requests.
    users, old_users = after["user_features"], before["user_features"]
    next_day = day + timedelta(days=1)
    assert users.loc[users["dt"] == next_day, "user_impressions_30d"].sum() < (
        old_users.loc[old_users["dt"] == next_day, "user_impressions_30d"].sum()
    )


def test_a_run_after_skipped_days_fills_the_gap(warehouse: dict, tmp_path: Path) -> None:
    """Runs for D-2 then D (D-1's run skipped): D's run rewrites from the table's newest partition on, so the
    marts equal one run of D (a run that wrote only D's own partitions would leave D-1's day stale or missing)."""
    source: Settings = warehouse["settings"]
    settings = tiny_settings(tmp_path / "home")
    for day in (DAYS[0], DAYS[2]):
        _land_raw_up_to(source.raw_dir, settings.raw_dir, day)
        _build_models(settings, day)
    assert _exports(settings) == _exports(source)


def test_the_next_days_run_reads_no_old_raw_event_partition(restore_env: None, tmp_path: Path) -> None:
    """A ten-day history built up to D-1; then every raw event partition older than D (D-1 included) is replaced by
    garbage bytes, the retrieval marts' 7-day window included (they read the stored days of stg_events); each
    garbage file keeps its partition's size and mtime, so the run takes its content digest from the last build's
    list instead of reading it (warehouse.build.raw_file_states). D's run, its tests included, still succeeds,
    scans and deduplicates only day D (stg_events' stored days are final), and its marts equal one run of D over the
    intact data (a run that re-read history fails on the first garbage file; one that read it from elsewhere would
    differ)."""
    history = TINY.model_copy(update={"days": 10})
    day = history.start_date + timedelta(days=9)
    intact = Settings(home=tmp_path / "intact", simulator=history)
    simulate(intact, day)
    _build_models(intact, day)
    settings = Settings(home=tmp_path / "home", simulator=history)
    _land_raw_up_to(intact.raw_dir, settings.raw_dir, day - timedelta(days=1))
    _build_models(settings, day - timedelta(days=1))
    _land_raw_up_to(intact.raw_dir, settings.raw_dir, day)
    old_days = [day - timedelta(days=n) for n in range(9, 0, -1)]
    for old_day in old_days:
        path = partition_path(settings.raw_dir, "events", old_day)
        stat = path.stat()
        path.write_bytes(b"not a parquet file".ljust(stat.st_size, b"\0"))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    build_warehouse(settings, day)

    exports, expected = _exports(settings), _exports(intact)
    assert sorted(exports) == sorted(expected)
    assert [name for name in expected if exports[name] != expected[name]] == []
    # The old days are in the marts: their features came from the first run, not re-read.
    assert _mart(settings, "training_examples")["dt"].min() == old_days[0]
    # stg_events, the one model that reads raw events, wrote the one day it read, all its rows...
    new_rows = pq.read_metadata(partition_path(settings.raw_dir, "events", day)).num_rows
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        per_day = dict(con.execute("select dt, count(*) from stg_events group by dt").fetchall())
    assert len(per_day) == 10 and per_day[day] == new_rows
    # ... reading only its raw file: the compiled model lists D's partition alone.
    compiled = settings.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / "staging" / "stg_events.sql"
    read = set(re.findall(r"/events/dt=([0-9-]+)/", compiled.read_text()))
    assert read == {day.isoformat()}
    # The daily aggregates and the query match aggregated day D alone too (a stored day is final).
    for model in ("int_item_daily", "int_user_daily", "int_user_category_daily", "query_item_match"):
        folder = "intermediate" if model.startswith("int_") else "marts"
        sql = (settings.dbt_artifacts_dir / "compiled" / "shoprank" / "models" / folder / f"{model}.sql").read_text()
        assert f"event_date >= date '{day.isoformat()}'" in sql, model
