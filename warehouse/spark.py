"""The `spark` dbt target: dbt-spark's session method, run as a subprocess from its own venv.

pyspark never enters .venv (Great Expectations imports it when present, and pyspark 4's import could exit Airflow's
scheduler forkserver), so :func:`install` creates ``settings.spark.venv`` (default ``<home>/venvs/spark``) with uv and
installs the pinned dbt-spark[session] and pyspark beside the dbt-core version .venv has. :func:`run_dbt` runs that
venv's ``dbt`` with the same arguments as the in-process DuckDB build (warehouse.build.dbt_args) and reads the node
statuses from its run_results.json. Spark runs inside that dbt process (``local[2]`` by default); its tables and
Derby metastore live under ``settings.spark_dir``. Each mart's post-hook has Spark write the export as part files
(dbt_project/macros/incremental.sql: spark__export_mart); :func:`collect_exports` concatenates them into the same
build-area files the DuckDB target writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from shoprank.settings import Settings
from warehouse.build import NodeResult, WarehouseBuildError

# The directory under the build area the post-hooks write into, one folder of part files per mart.
PARTS_DIR = "_spark"


def venv_dir(settings: Settings) -> Path:
    return settings.spark.venv or settings.home_dir / "venvs" / "spark"


def dbt_executable(settings: Settings) -> Path:
    return venv_dir(settings) / "bin" / "dbt"


def requirements(settings: Settings) -> list[str]:
    """The pinned packages of the Spark venv: dbt-core as in .venv (one dbt project, one dbt version)."""
    return [
        f"dbt-core=={version('dbt-core')}",
        f"dbt-spark[session]=={settings.spark.dbt_spark_version}",
        f"pyspark=={settings.spark.pyspark_version}",
    ]


def _marker(settings: Settings) -> Path:
    pins = "_".join(r.split("==")[1] for r in requirements(settings))
    return venv_dir(settings) / f".installed-{pins}"


def install(settings: Settings) -> Path:
    """Create the Spark venv and install the pinned packages (a no-op when those versions are installed)."""
    if _marker(settings).exists() and dbt_executable(settings).exists():
        print(f"==> [spark-install] {venv_dir(settings)} has {' '.join(requirements(settings))}", flush=True)
        return dbt_executable(settings)
    uv = [found] if (found := shutil.which("uv")) else [sys.executable, "-m", "uv"]
    venv = venv_dir(settings)
    if not (venv / "bin" / "python").exists():
        print(f"==> [spark-install] creating {venv}", flush=True)
        subprocess.run([*uv, "venv", "--python", sys.executable, str(venv)], check=True)
    print(f"==> [spark-install] installing {' '.join(requirements(settings))} (pyspark is ~300 MB)", flush=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([*uv, "pip", "install", *requirements(settings)], check=True, env=env)
    for old in venv.glob(".installed-*"):
        old.unlink()
    _marker(settings).touch()
    print(f"==> [spark-install] done: {dbt_executable(settings)}", flush=True)
    return dbt_executable(settings)


def spark_env(settings: Settings) -> dict[str, str]:
    """What dbt_project/profiles.yml's `spark` target reads, from settings.spark."""
    return {
        "SHOPRANK_SPARK_MASTER": settings.spark.master,
        "SHOPRANK_SPARK_DRIVER_MEMORY": settings.spark.driver_memory,
        "SHOPRANK_SPARK_EXECUTOR_MEMORY": settings.spark.executor_memory,
        "SHOPRANK_SPARK_SHUFFLE_PARTITIONS": str(settings.spark.shuffle_partitions),
        "SHOPRANK_SPARK_SCHEMA": settings.spark.schema_name,
        "SHOPRANK_SPARK_DIR": str(settings.spark_dir),
    }


def _node_results(run_results: Path) -> list[NodeResult]:
    results = json.loads(run_results.read_text())["results"]
    return [
        NodeResult(r["unique_id"], r["unique_id"].split(".")[0], str(r["status"]), r.get("message") or "")
        for r in results
    ]


def run_dbt(settings: Settings, args: list[str]) -> tuple[bool, list[NodeResult], str]:
    """Run the Spark venv's ``dbt`` with ``args``; (success, the nodes' results, the output's tail for errors)."""
    exe = dbt_executable(settings)
    if not exe.exists():
        raise WarehouseBuildError(f"the Spark venv has no dbt at {exe}: run `make spark-install`")
    for folder in (settings.spark_dir / "tmp", settings.marts_build_dir / PARTS_DIR):
        folder.mkdir(parents=True, exist_ok=True)
    run_results = settings.dbt_artifacts_dir / "run_results.json"
    run_results.unlink(missing_ok=True)
    env = {**os.environ, **settings.runtime_env(), **spark_env(settings)}
    env.pop("VIRTUAL_ENV", None)
    # In the Spark dir: whatever Spark or Derby still writes to the working directory stays there.
    done = subprocess.run([str(exe), *args], env=env, cwd=settings.spark_dir, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
    if not run_results.exists():
        return False, [], tail
    return done.returncode == 0, _node_results(run_results), tail


def collect_exports(settings: Settings) -> dict[str, Any]:
    """Concatenate each mart's part files (in name order: the sort's order) into ``<marts_build_dir>/<mart>.parquet``,
    written atomically, row group by row group; returns rows per mart and seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    exported: dict[str, int] = {}
    parts_root = settings.marts_build_dir / PARTS_DIR
    for folder in sorted(p for p in parts_root.glob("*") if p.is_dir()):
        parts = sorted(folder.glob("part-*.parquet"))
        if not parts:
            continue
        # DuckDB's export: every column nullable, no Spark schema metadata.
        schema = pa.schema([field.with_nullable(True) for field in pq.read_schema(parts[0])])
        path = settings.marts_build_dir / f"{folder.name}.parquet"
        staged = path.with_suffix(".parquet.tmp")
        rows = 0
        with pq.ParquetWriter(staged, schema) as writer:
            for part in parts:
                source = pq.ParquetFile(part)
                for group in range(source.num_row_groups):
                    table = source.read_row_group(group).cast(schema)
                    writer.write_table(table)
                    rows += table.num_rows
        staged.replace(path)
        shutil.rmtree(folder)
        exported[folder.name] = rows
    return {"marts": exported, "elapsed_s": round(time.perf_counter() - started, 2)}
