"""The Spark processes infra/k8s/spark.yaml declares run: its master and worker commands, started on loopback from
the Spark venv (only the venv's path, addresses, ports and sizes changed), form a cluster on which a driver set up
as the dbt worker's (SPARK_LOCAL_HOSTNAME, settings.spark.executor_memory) runs its SQL on an executor.

Needs the Spark venv (`make spark-install`; `make test-profiles` does it), as tests/data/test_spark_warehouse.py:
without it the test fails and says how to install it. Three JVMs: marker `profiles`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from shoprank.settings import Settings
from tests.infra.test_dask_commands import _with
from tests.support.processes import background_server, free_port
from warehouse import spark

pytestmark = [pytest.mark.profiles, pytest.mark.timeout(900)]

SPARK = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "spark.yaml"

DRIVER = """
import json, sys
from pyspark.sql import SparkSession
session = (SparkSession.builder.master(sys.argv[1]).config("spark.executor.memory", sys.argv[2])
           .config("spark.ui.enabled", "false").getOrCreate())
total = session.sql("select sum(id) as total from range(100000)").collect()[0]["total"]
executors = session.sparkContext._jsc.sc().statusTracker().getExecutorInfos()
print(json.dumps({"total": total, "executors": sorted(e.host() for e in executors)}))
session.stop()
"""


def _commands() -> dict[str, list[str]]:
    documents = [d for d in yaml.safe_load_all(SPARK.read_text()) if d and d["kind"] == "Deployment"]
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"] for d in documents}


def _venv(settings: Settings) -> Path:
    candidates = [spark.venv_dir(settings), spark.venv_dir(settings.model_copy(update={"home": None}))]
    for venv in candidates:
        if (venv / "bin" / "spark-class").exists():
            return venv
    pytest.fail(f"no Spark venv at {', '.join(map(str, candidates))}: run `make spark-install`")


def _master_state(ui: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{ui}/json/", timeout=10).raise_for_status().json()


def test_the_manifest_spark_master_and_worker_run_the_driver_s_sql(tmp_path: Path):
    settings = Settings(home=tmp_path)
    venv = _venv(settings)
    spark_class = str(venv / "bin" / "spark-class")
    (spark_home,) = (venv / "lib").glob("python3*/site-packages/pyspark")
    # SPARK_HOME as the image sets it; SPARK_LOCAL_IP keeps the web UIs on loopback.
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1"}
    commands = _commands()
    port, ui, worker_ui = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"

    master = commands["spark-master"]
    assert master[0] == commands["spark-worker"][0] and master[0].endswith("/bin/spark-class")  # the image's venv
    master = _with(
        _with(_with([spark_class, *master[1:]], "--host", "127.0.0.1"), "--port", str(port)), "--webui-port", str(ui)
    )
    worker = commands["spark-worker"]
    assert worker[2].startswith("spark://")
    worker = [spark_class, worker[1], url, *worker[3:]]
    for option, value in {
        "--host": "127.0.0.1",
        "--cores": "1",
        "--memory": settings.spark.executor_memory,  # room for one executor of the settings' size
        "--work-dir": str(tmp_path / "work"),
        "--webui-port": str(worker_ui),
    }.items():
        worker = _with(worker, option, value)
    worker_env = {**env, "SPARK_LOCAL_DIRS": str(tmp_path / "local")}
    with (
        background_server(master, f"http://127.0.0.1:{ui}/json/", tmp_path / "master.log", env=env, ready_timeout=240),
        background_server(
            worker, f"http://127.0.0.1:{worker_ui}/json/", tmp_path / "worker.log", env=worker_env, ready_timeout=240
        ),
    ):
        deadline = time.monotonic() + 120
        while _master_state(ui)["aliveworkers"] < 1 and time.monotonic() < deadline:
            time.sleep(1)
        assert _master_state(ui)["aliveworkers"] == 1
        # The driver as the dbt worker runs it: its own process, advertising the address executors connect back to.
        driver = subprocess.run(
            [str(venv / "bin" / "python"), "-c", DRIVER, url, settings.spark.executor_memory],
            env={**env, "SPARK_LOCAL_HOSTNAME": "127.0.0.1"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert driver.returncode == 0, driver.stderr[-3000:]
        result = json.loads(driver.stdout.strip().splitlines()[-1])
        assert result["total"] == sum(range(100000))
        assert result["executors"] == ["127.0.0.1", "127.0.0.1"]  # the driver and one executor on the worker
        (app,) = _master_state(ui)["completedapps"]  # the app ran on the worker with the settings' executor heap
        assert app["state"] == "FINISHED" and app["cores"] == 1
        assert app["memoryperexecutor"] == 1024 * int(settings.spark.executor_memory.removesuffix("g"))
