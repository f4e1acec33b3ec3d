"""`make bench-warehouse`: the same `dbt build` (every model, data test and unit test) on DuckDB and on Spark
(`local[2]`, from the Spark venv: `make spark-install`), on the same raw data; printed, never asserted.

For each size: raw events in, mart rows out (the 11 exported marts), wall seconds, CPU seconds, events and mart
rows per wall second and per CPU second. CPU is this process's for DuckDB (dbt runs in it) and the dbt subprocess's
for Spark: pyspark never waits for its JVM (the JVM exits on its own when dbt does), so the JVM's CPU is not in it;
read it from /proc/<jvm pid>/stat while the build runs (utime + stime) to count it. `tiny` is the test world
(tests/data/conftest.py: TINY); a number is `--events N` of the simulator. Each size gets its own homes under
var/bench-warehouse/ (one per engine, the raw data shared).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from datetime import date
from pathlib import Path

from benchmarks.common import line

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = date(2026, 1, 7)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _world(size: str) -> object:
    from shoprank.settings import SimulatorSettings

    if size == "tiny":  # tests/data/conftest.py: TINY
        return SimulatorSettings(
            days=4, users=300, items=150, sellers=12, categories=5, requests_per_day=300, slate_size=10
        )
    return SimulatorSettings(events=int(size))


def bench_size(base: Path, size: str) -> None:
    import pyarrow.parquet as pq

    from producers.simulator import simulate
    from shoprank.settings import Settings
    from warehouse.build import EXPORTED_MARTS, build_warehouse
    from warehouse.spark import venv_dir

    world = _world(size)
    venv = venv_dir(Settings())  # `make spark-install`'s, in the default home (read before a build exports another)
    root = base / f"events-{size}"
    shutil.rmtree(root, ignore_errors=True)
    duck = Settings(home=root / "duckdb", simulator=world)
    simulate(duck, RUN_DATE)
    events = sum(pq.ParquetFile(p).metadata.num_rows for p in (duck.raw_dir / "events").rglob("*.parquet"))
    spark_home = root / "spark"
    spark_home.mkdir(parents=True)
    (spark_home / "raw").symlink_to(duck.raw_dir)
    spark = Settings(home=spark_home, simulator=world, dbt_target="spark")
    spark = spark.model_copy(update={"spark": spark.spark.model_copy(update={"venv": venv})})
    for name, settings, who in (
        ("duckdb", duck, resource.RUSAGE_SELF),
        ("spark local[2] (CPU: dbt only)", spark, resource.RUSAGE_CHILDREN),
    ):
        cpu, started = _cpu(who), time.perf_counter()
        build = build_warehouse(settings, RUN_DATE)
        wall, cpu = time.perf_counter() - started, _cpu(who) - cpu
        rows = sum(pq.ParquetFile(settings.marts_build_dir / f"{m}.parquet").metadata.num_rows for m in EXPORTED_MARTS)
        nodes = sum(build["resource_types"].get(kind, 0) for kind in ("model", "test", "unit_test"))
        line(
            f"{size} ({events:,} events) {name}",
            f"{wall:6.1f} s wall, {cpu:6.1f} s CPU, {nodes} nodes, {rows:,} mart rows: "
            f"{events / wall:,.0f} events/s and {rows / wall:,.0f} mart rows/s wall, "
            f"{events / max(cpu, 1e-9):,.0f} events and {rows / max(cpu, 1e-9):,.0f} mart rows per CPU-s",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="tiny", help="comma-separated: tiny and/or event counts, e.g. tiny,100000")
    args = parser.parse_args()
    base = Path(os.environ.get("SHOPRANK_HOME", ROOT / "var")) / "bench-warehouse"
    print(f"dbt build on DuckDB vs Spark, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    for size in args.sizes.split(","):
        bench_size(base, size.strip())
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
