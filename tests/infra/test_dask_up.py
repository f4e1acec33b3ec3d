"""`make dask-up` / `make dask-down` (orchestration/dask_cluster.py): the cluster profile's Dask scheduler and workers
on loopback. `up`'s output, eval'd as scripts/airflow.sh evals it, puts the address into the settings; the train
step's fits run on those worker processes; `down` stops every process `up` started, within a bound."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from orchestration.dask_cluster import _alive, state_dir
from shoprank.ranking_features import feature_columns_for
from shoprank.settings import Settings
from tests.model.test_small_data import tiny_world
from tests.support.processes import free_port
from training.chunks import frame_to_chunks, split_days
from training.dask_fit import fit_engine
from training.streaming import fit_ranker_chunks

MODULE = [sys.executable, "-m", "orchestration.dask_cluster"]


def _dask(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODULE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_dask_up_starts_scheduler_and_workers_the_settings_point_at_and_down_stops_them(tmp_path: Path):
    port, dashboard = free_port(), free_port()
    env = {
        **os.environ,
        "SHOPRANK_HOME": str(tmp_path),
        "SHOPRANK_SERVICES__DASK_PORT": str(port),
        "SHOPRANK_SERVICES__DASK_DASHBOARD_PORT": str(dashboard),
    }
    env.pop("SHOPRANK_TRAINING__DASK_SCHEDULER_ADDRESS", None)
    address = f"tcp://127.0.0.1:{port}"
    settings = Settings(home=tmp_path, services={"dask_port": port, "dask_dashboard_port": dashboard})
    assert settings.services.dask_address == address and settings.services.dask_workers == 2

    # As scripts/airflow.sh does on the cluster profile: eval `up`, then every process started after reads it.
    read = "from shoprank.settings import Settings; print(Settings().training.dask_scheduler_address)"
    up = subprocess.run(
        ["bash", "-c", f'eval "$({" ".join(MODULE)} up)" && {sys.executable} -c "{read}"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    pids = {path.stem: int(path.read_text()) for path in state_dir(settings).glob("*.pid")}
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == address
        assert set(pids) == {"scheduler", "worker-1", "worker-2"} and all(map(_alive, pids.values()))
        assert _dask(["status"], env, 60).stdout.strip() == f"dask: up, 2 workers at {address}"
        # A second `up` uses the running scheduler: nothing new started.
        again = _dask(["up"], env, 120)
        assert again.returncode == 0 and address in again.stdout
        assert {path.stem: int(path.read_text()) for path in state_dir(settings).glob("*.pid")} == pids

        # The train step's ranker fit runs on these worker processes (training/dask_fit.py).
        cfg = settings.training.model_copy(
            update={"dask_scheduler_address": address, "n_estimators": 10, "early_stopping_rounds": 5, "min_trees": 3}
        )
        frame = tiny_world(settings, requests_per_day=40, seed=3)
        chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=200)
        fit_days, validation_days, _ = split_days(chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days)
        columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
        with fit_engine(cfg) as engine:
            assert engine.card() == {"engine": "xgboost.dask", "dask_scheduler": address, "dask_workers": 2}
            ranker, params = fit_ranker_chunks(
                cfg, chunked.on_days(fit_days), chunked.on_days(validation_days), columns, engine
            )
        assert params["n_estimators"] >= cfg.min_trees and ranker.get_booster().num_boosted_rounds() > 0
    finally:
        started = time.monotonic()
        down = _dask(["down"], env, 120)
    assert down.returncode == 0, down.stderr
    assert time.monotonic() - started < 60
    assert not any(_alive(pid) for pid in pids.values())
    assert not list(state_dir(settings).glob("*.pid"))
    assert _dask(["status"], env, 60).stdout.strip() == f"dask: down at {address}"


def test_make_dask_up_and_down_run_this_module_and_make_help_lists_them():
    root = Path(__file__).resolve().parents[2]
    listed = subprocess.run(["make", "help"], cwd=root, capture_output=True, text=True, timeout=60, check=True)
    for target, command in (("dask-up", "up"), ("dask-down", "down")):
        assert f"{target} " in listed.stdout
        dry = subprocess.run(["make", "-n", target], cwd=root, capture_output=True, text=True, timeout=60, check=True)
        assert f"-m orchestration.dask_cluster {command}" in dry.stdout
