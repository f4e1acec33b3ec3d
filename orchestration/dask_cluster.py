"""`make dask-up` / `make dask-down`: the cluster profile's Dask scheduler and workers on loopback.

The train step fits through xgboost.dask when training.dask_scheduler_address is set (training/dask_fit.py). On a
machine this starts what infra/k8s/dask.yaml deploys: `dask scheduler` and `services.dask_workers` `dask worker`s
(each under its nanny), on services.dask_host, from this venv, with logs and pid files under <home>/services/dask.
`up` prints the export line that points the settings at it (`make airflow PROFILE=cluster` evals it, so the Celery
workers that run `train` inherit it). As services-up does, `down` stops only what `up` started: a scheduler that
already answered at the address is used and left alone.

    python -m orchestration.dask_cluster up|down|status
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shoprank.settings import Settings, get_settings

ADDRESS_ENV = "SHOPRANK_TRAINING__DASK_SCHEDULER_ADDRESS"  # training.dask_scheduler_address


def state_dir(settings: Settings) -> Path:
    return settings.home_dir / "services" / "dask"


def _counts_url(settings: Settings) -> str:
    return f"http://{settings.services.dask_host}:{settings.services.dask_dashboard_port}/json/counts.json"


def workers_ready(settings: Settings) -> int | None:
    """Workers registered with the scheduler at the settings' address; None when no scheduler answers."""
    try:
        response = httpx.get(_counts_url(settings), timeout=2.0)
        return int(response.json()["workers"]) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def _commands(settings: Settings) -> dict[str, list[str]]:
    """Process name -> command: infra/k8s/dask.yaml's scheduler and workers, bound to loopback."""
    services = settings.services
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler = [dask, "scheduler", "--host", services.dask_host, "--port", str(services.dask_port)]
    commands = {
        "scheduler": [*scheduler, "--dashboard-address", f"{services.dask_host}:{services.dask_dashboard_port}"]
    }
    for number in range(1, services.dask_workers + 1):
        commands[f"worker-{number}"] = [
            dask,
            "worker",
            services.dask_address,
            "--host",
            services.dask_host,
            "--nthreads",
            str(services.dask_threads_per_worker),
            "--memory-limit",
            services.dask_worker_memory_limit,
            "--name",
            f"shoprank-{number}",
            "--no-dashboard",
        ]
    return commands


def _start(settings: Settings, name: str, command: list[str]) -> None:
    root = state_dir(settings)
    with (root / f"{name}.log").open("wb") as log:  # own session: down() signals the nanny and its worker together
        process = subprocess.Popen(
            command, cwd=settings.project_root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (root / f"{name}.pid").write_text(str(process.pid))


def up(settings: Settings, timeout_s: float = 120.0) -> str:
    """Start the scheduler and workers unless a scheduler already answers; wait for every worker; the address."""
    services = settings.services
    if workers_ready(settings) is not None:
        print(f"==> [dask] a scheduler already answers at {services.dask_address}; using it", file=sys.stderr)
        return services.dask_address
    root = state_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    down(settings)  # what a previous `up` left behind (its scheduler no longer answers)
    commands = _commands(settings)
    _start(settings, "scheduler", commands.pop("scheduler"))
    deadline = time.monotonic() + timeout_s
    while workers_ready(settings) is None:
        _check(settings, deadline, "the scheduler")
    for name, command in commands.items():
        _start(settings, name, command)
    while (workers_ready(settings) or 0) < services.dask_workers:
        _check(settings, deadline, f"{services.dask_workers} workers")
    print(
        f"==> [dask] scheduler {services.dask_address}, {services.dask_workers} workers (logs: {root})", file=sys.stderr
    )
    return services.dask_address


def _check(settings: Settings, deadline: float, what: str) -> None:
    """Between polls: stop everything and raise when a started process died or the deadline passed."""
    dead = [path.stem for path in state_dir(settings).glob("*.pid") if not _alive(int(path.read_text()))]
    if dead or time.monotonic() > deadline:
        down(settings)
        reason = f"{', '.join(dead)} exited" if dead else "timed out"
        raise RuntimeError(f"Dask: {what} not ready ({reason}); see the logs in {state_dir(settings)}")
    time.sleep(0.5)


def _alive(pid: int) -> bool:
    """A running process (a zombie, left for a parent that never reaps it, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _ours(pid: int) -> bool:
    """Still a dask process leading its own group: a recycled pid is never signalled."""
    try:
        return os.getpgid(pid) == pid and b"dask" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ProcessLookupError, FileNotFoundError):
        return False


def down(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Stop the processes `up` started (workers first, then the scheduler); the names stopped."""
    pid_files = sorted(state_dir(settings).glob("*.pid"), key=lambda path: path.stem == "scheduler")
    stopped = []
    for path in pid_files:
        pid = int(path.read_text())
        if _alive(pid) and _ours(pid):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(path.stem)
        path.unlink()
    return stopped


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:]) or ["status"]
    settings = get_settings()
    if command == ["up"]:
        address = up(settings)
        print(f"export {ADDRESS_ENV}={shlex.quote(address)}")  # for eval, as `shoprank env`
    elif command == ["down"]:
        stopped = down(settings)
        print(f"==> [dask] stopped: {', '.join(stopped) or 'nothing this home started'}", file=sys.stderr)
    elif command == ["status"]:
        workers = workers_ready(settings)
        state = "down" if workers is None else f"up, {workers} workers"
        print(f"dask: {state} at {settings.services.dask_address}")
    else:
        print("usage: python -m orchestration.dask_cluster up|down|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
