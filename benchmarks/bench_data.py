"""`make bench-data`: data-scale figures, printed, never asserted.

- simulator: wall time and peak RSS of `shoprank simulate --events N` (its own process) for each N;
- warehouse: `dbt build` wall time on the largest N, and the heaviest mart (by dbt's own timing) re-run as its
  compiled SQL straight in DuckDB (COPY to parquet, as the external materialization does): the ratio is the dbt
  overhead on that model.

Each N gets its own home under var/bench-data/ (or $SHOPRANK_HOME/bench-data), reused on later runs only with
--reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import line

ROOT = Path(__file__).resolve().parents[1]


def _home(base: Path, events: int) -> Path:
    return base / f"events-{events}"


def _env(home: Path, events: int) -> dict[str, str]:
    return {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_SIMULATOR__EVENTS": str(events)}


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one child process (os.wait4: that child's own rusage).

    CPU time is printed beside wall time because the bench machine may be shared: it is the load-free figure."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench_simulator(base: Path, sizes: list[int], reuse: bool) -> None:
    print("simulator: shoprank simulate --events N (own process, 7-day window)", flush=True)
    for events in sizes:
        home = _home(base, events)
        if home.exists() and not reuse:
            shutil.rmtree(home)
        cmd = [sys.executable, "-m", "orchestration.cli", "simulate", "--events", str(events)]
        elapsed, cpu, peak = _timed(cmd, _env(home, events))
        written = sum(p.stat().st_size for p in (home / "raw").rglob("*.parquet")) / 2**20
        line(
            f"{events:,} events",
            f"{elapsed:6.1f} s wall, {cpu:6.1f} s CPU, peak RSS {peak:,.0f} MiB, raw {written:,.0f} MiB",
        )


_BUILD = """
import json, sys
from shoprank.settings import get_settings
from warehouse.build import build_warehouse
settings = get_settings()
print(json.dumps(build_warehouse(settings, settings.default_run_date)))
"""

_DIRECT = """
import json, sys, time, duckdb
from shoprank.settings import get_settings, apply_runtime_env
settings = get_settings(); apply_runtime_env(settings)
sql, out = sys.argv[1], sys.argv[2]
con = duckdb.connect(str(settings.warehouse_path), read_only=True)
con.execute("set TimeZone = 'UTC'")
started = time.perf_counter()
con.execute(f"copy ({sql}) to '{out}' (format parquet)")
print(json.dumps({"elapsed_s": time.perf_counter() - started}))
"""


def bench_warehouse(base: Path, events: int) -> None:
    home = _home(base, events)
    env = _env(home, events)
    print(f"warehouse: dbt build on {events:,} events", flush=True)
    elapsed, cpu, peak = _timed([sys.executable, "-c", _BUILD], env)
    line(
        "dbt build (models + unit and data tests)", f"{elapsed:6.1f} s wall, {cpu:6.1f} s CPU, peak RSS {peak:,.0f} MiB"
    )
    artifacts = home / "dbt" / "target"
    results = json.loads(next(artifacts.rglob("run_results.json")).read_text())
    models = [r for r in results["results"] if r["unique_id"].startswith("model.")]
    heaviest = max(models, key=lambda r: r["execution_time"])
    name = heaviest["unique_id"].split(".")[-1]
    line(f"heaviest model in dbt: {name}", f"{heaviest['execution_time']:6.1f} s")
    compiled = next(artifacts.rglob(f"compiled/**/{name}.sql")).read_text()
    out = home / "bench-direct.parquet"
    run = subprocess.run(
        [sys.executable, "-c", _DIRECT, compiled, str(out)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    direct = json.loads(run.stdout.strip().splitlines()[-1])["elapsed_s"]
    out.unlink(missing_ok=True)
    line(
        f"{name} SQL straight in DuckDB", f"{direct:6.1f} s  (dbt / direct = {heaviest['execution_time'] / direct:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--build-events", type=int, default=None, help="dbt build on this N (default: the largest)")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep existing homes (skip nothing, overwrite raw)")
    args = parser.parse_args()
    base = Path(os.environ.get("SHOPRANK_BENCH_DATA_HOME", ROOT / "var" / "bench-data"))
    bench_simulator(base, args.events, args.reuse)
    if not args.skip_build:
        bench_warehouse(base, args.build_events or max(args.events))


if __name__ == "__main__":
    main()
