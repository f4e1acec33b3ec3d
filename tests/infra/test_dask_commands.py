"""The Dask processes infra/k8s/dask.yaml declares run: its scheduler and worker commands, started here on loopback
(only the addresses and ports changed), form a cluster a client computes on."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tests.support.processes import background_server, free_port

DASK = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "dask.yaml"


def _commands() -> dict[str, list[str]]:
    documents = [d for d in yaml.safe_load_all(DASK.read_text()) if d and d["kind"] == "Deployment"]
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"] for d in documents}


def _with(command: list[str], option: str, value: str) -> list[str]:
    """``command`` with ``option`` set to ``value`` (replaced where present, appended where not)."""
    if option in command:
        at = command.index(option)
        return [*command[: at + 1], value, *command[at + 2 :]]
    return [*command, option, value]


def test_the_manifest_dask_scheduler_and_worker_form_a_cluster(tmp_path: Path):
    from distributed import Client

    commands = _commands()
    dask = str(Path(sys.executable).with_name("dask"))
    port, dashboard = free_port(), free_port()
    scheduler = commands["dask-scheduler"]
    assert scheduler[:2] == ["dask", "scheduler"]
    scheduler = _with(_with(scheduler, "--host", "127.0.0.1"), "--port", str(port))
    scheduler = [dask, *_with(scheduler, "--dashboard-address", f"127.0.0.1:{dashboard}")[1:]]
    address = f"tcp://127.0.0.1:{port}"
    worker = commands["dask-worker"]
    worker = [dask, "worker", address, *worker[3:], "--host", "127.0.0.1", "--no-dashboard"]
    with (
        background_server(scheduler, f"http://127.0.0.1:{dashboard}/health", tmp_path / "scheduler.log"),
        background_server(
            worker, f"http://127.0.0.1:{dashboard}/health", tmp_path / "worker.log", ready_timeout=120
        ) as worker_process,
        Client(address, timeout=60) as client,
    ):
        client.wait_for_workers(1, timeout=120)
        info = client.scheduler_info()
        assert len(info["workers"]) == 1
        (worker_info,) = info["workers"].values()
        assert worker_info["nthreads"] == int(commands["dask-worker"][commands["dask-worker"].index("--nthreads") + 1])
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        assert worker_process.poll() is None
