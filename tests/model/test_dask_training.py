"""The train step through xgboost.dask (settings.training.dask_scheduler_address): on one Dask worker it fits the
very models the in-process fit does; on two (marker `profiles`) the train step's holdout NDCG@10 matches the
single-process run within noise and the card names the engine and scheduler; a scheduler that does not answer fails
the step with the setting's name.

The cluster's workers are threads of the test process talking TCP (the scheduler, the workers, the step's client and
XGBoost's collective all go over loopback as on a real cluster), which keeps the test to seconds; the manifest's
scheduler and worker processes are started by tests/infra/test_dask_commands.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shoprank.ranking_features import feature_columns_for, model_matrix
from shoprank.settings import Settings, get_settings
from tests.model.test_small_data import RUN_DATE, tiny_world
from tests.support.processes import free_port
from training.chunks import frame_to_chunks, split_days
from training.dask_fit import DaskUnavailable, fit_engine
from training.streaming import IN_PROCESS, fit_classifier_chunks, fit_ranker_chunks
from training.train import CARD_FILE, candidate_dir, train_on_frame


def _cluster(workers: int, threads: int) -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        n_workers=workers,
        threads_per_worker=threads,
        dashboard_address=":0",
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def one_worker() -> Iterator[str]:
    """One worker with the in-process fit's two threads: the same trees, to the float."""
    yield from _cluster(1, 2)


@pytest.fixture(scope="module")
def two_workers() -> Iterator[str]:
    yield from _cluster(2, 1)


def _settings(home: Path, **training: object) -> Settings:
    settings = get_settings().model_copy(update={"home": home})
    small = {"n_estimators": 30, "classifier_n_estimators": 30, "early_stopping_rounds": 10, "min_trees": 5}
    return settings.model_copy(update={"training": settings.training.model_copy(update={**small, **training})})


def _card(settings: Settings) -> dict:
    return json.loads((candidate_dir(settings, RUN_DATE) / CARD_FILE).read_text())


def test_on_one_worker_the_dask_fit_equals_the_in_process_fit(one_worker: str, tmp_path: Path) -> None:
    """Same params, missing values, sampling, early stopping and query groups: the ranker, CTR and CVR models fitted
    through xgboost.dask on one worker score the holdout as the in-process models do (a request split between
    partitions or merged with another would change the ranker's trees)."""
    settings = _settings(tmp_path, dask_scheduler_address=one_worker, negative_sample_rate=0.5)
    cfg = settings.training
    frame = tiny_world(settings, requests_per_day=60, seed=1)
    frame.loc[frame.index % 7 == 0, frame.columns[1]] = np.nan  # missing values take XGBoost's default branch
    chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=97)  # ~20 chunks, days cut in several
    fit_days, validation_days, holdout_days = split_days(
        chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days
    )
    fit, validation = chunked.on_days(fit_days), chunked.on_days(validation_days)
    columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
    holdout = model_matrix(frame[frame["dt"].isin(holdout_days)], columns)

    fits = {
        "ranker": lambda engine: fit_ranker_chunks(cfg, fit, validation, columns, engine),
        "ctr": lambda engine: fit_classifier_chunks(cfg, fit, validation, columns, "label_click", engine=engine),
        "cvr": lambda engine: fit_classifier_chunks(
            cfg, fit, validation, columns, "label_purchase", clicks_only=True, engine=engine
        ),
    }
    with fit_engine(cfg) as engine:
        assert engine.card() == {"engine": "xgboost.dask", "dask_scheduler": one_worker, "dask_workers": 1}
        for name, fitted in fits.items():
            (local, local_params), (dask, dask_params) = fitted(IN_PROCESS), fitted(engine)
            assert dask_params == local_params, name
            if name == "ranker":
                scores = dask.predict(holdout), local.predict(holdout)
            else:
                scores = dask.predict_proba(holdout)[:, 1], local.predict_proba(holdout)[:, 1]
            np.testing.assert_allclose(*scores, rtol=0, atol=1e-6, err_msg=name)
    assert local_params["n_estimators"] >= cfg.min_trees


@pytest.mark.profiles
def test_the_train_step_on_two_workers_matches_the_single_process_fit(two_workers: str, tmp_path: Path) -> None:
    """Two workers sketch the quantiles apart and subsample with their own streams: the models differ, the holdout
    NDCG@10 and click AUC stay within noise, and the card names the engine and the scheduler."""
    scheduler = two_workers
    local = _settings(tmp_path / "local")
    distributed = _settings(tmp_path / "dask", dask_scheduler_address=scheduler)
    frame = tiny_world(local, requests_per_day=60, seed=1)
    # ~20 chunks, the days cut in several: both workers hold partitions of the fit and validation days
    train_on_frame(local, RUN_DATE, frame, rows_per_chunk=97)
    train_on_frame(distributed, RUN_DATE, frame, rows_per_chunk=97)
    one, dask = _card(local), _card(distributed)

    assert one["engine"] == "xgboost" and one["dask_scheduler"] == ""
    assert dask["engine"] == "xgboost.dask" and dask["dask_scheduler"] == scheduler and dask["dask_workers"] == 2
    for params in ("ranker", "ctr", "cvr"):  # same hyperparameters, objective and trees picked by early stopping
        assert abs(dask["params"][params]["n_estimators"] - one["params"][params]["n_estimators"]) <= 10
        assert {k: v for k, v in dask["params"][params].items() if k != "n_estimators"} == {
            k: v for k, v in one["params"][params].items() if k != "n_estimators"
        }
    k = local.training.ndcg_k
    assert one["metrics"][f"model_ndcg@{k}"] > one["metrics"][f"random_ndcg@{k}"] + 0.1  # it learned something
    assert dask["metrics"][f"model_ndcg@{k}"] == pytest.approx(one["metrics"][f"model_ndcg@{k}"], abs=0.02)
    assert dask["metrics"]["ctr_auc_click"] == pytest.approx(one["metrics"]["ctr_auc_click"], abs=0.02)


def test_an_unreachable_scheduler_fails_with_the_setting_name(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    settings = _settings(tmp_path, dask_scheduler_address=address, dask_connect_timeout_s=2.0)
    frame = tiny_world(settings, requests_per_day=20, seed=3)
    with pytest.raises(DaskUnavailable, match=r"training\.dask_scheduler_address.*did not answer") as failure:
        train_on_frame(settings, RUN_DATE, frame, rows_per_chunk=97)
    assert address in str(failure.value)
    assert not (candidate_dir(settings, RUN_DATE) / CARD_FILE).exists()
