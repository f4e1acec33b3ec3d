"""The train step's fits through xgboost.dask on a Dask cluster (settings.training.dask_scheduler_address).

Same inputs as the in-process fit (training.streaming): the loaders turn each chunk of the training set into a batch
(float32 matrix with NaN as missing, label, qid or weight), and the same params, sampling and early stopping apply.
Only where the matrices live and who grows the trees change:

- the train step reads each chunk and scatters its batch to one worker (round robin), so workers need no access to
  the step's disk and the step holds one chunk at a time; the cluster holds the set (about 4 bytes a feature and row
  before quantizing);
- each batch is a partition of a DaskQuantileDMatrix. A chunk holds whole requests, so a query group never spans
  partitions or workers. A worker concatenates its partitions and sorts them by qid unless qid already ascends, so
  qid numbers every request once per engine, ascending in the order the batches are scattered (the fit days before
  the validation days): two partitions never share a qid and the sort is never needed;
- a worker grows trees with its own threads (the params' nthread is dropped); the booster comes back to the step and
  is saved as the in-process one is.

A batch is scattered once per model: the early-stopping probe and the refit share the partitions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shoprank.settings import TrainingSettings
from training.chunks import Chunk
from training.streaming import IN_PROCESS, Batch, FitEngine, native_params

log = logging.getLogger(__name__)

SETTING = "training.dask_scheduler_address (SHOPRANK_TRAINING__DASK_SCHEDULER_ADDRESS)"


class DaskUnavailable(RuntimeError):
    """The configured Dask scheduler did not answer, or has no worker."""


# One chunk's batch on a worker: array name -> (future, shape, dtype).
Partition = dict[str, tuple[Any, tuple[int, ...], Any]]


class DaskFit:
    """A FitEngine on a Dask cluster: DaskQuantileDMatrix partitions scattered from the chunks, xgboost.dask.train."""

    name = "xgboost.dask"

    def __init__(self, client: Any, address: str) -> None:
        self.client, self.address = client, address
        self.workers = sorted(client.scheduler_info()["workers"])
        self._turn = 0
        self._next_qid = 0
        self._scattered: dict[tuple[Callable[..., Any], str], Partition | None] = {}

    def _partition(self, chunk: Chunk, load: Callable[[Chunk, int], Batch | None]) -> Partition | None:
        """The chunk's batch on one worker (scattered on first use, the next worker each time)."""
        key = (load, str(chunk.path))
        if key not in self._scattered:
            batch = load(chunk, self._next_qid)
            part: Partition | None = None
            if batch is not None:
                if "qid" in batch:
                    self._next_qid = int(batch["qid"][-1]) + 1
                worker = self.workers[self._turn % len(self.workers)]
                self._turn += 1
                names = list(batch)
                futures = self.client.scatter([batch[n] for n in names], workers=[worker], hash=False)
                part = {n: (f, batch[n].shape, batch[n].dtype) for n, f in zip(names, futures, strict=True)}
            self._scattered[key] = part
        return self._scattered[key]

    def matrix(self, chunks: list[Chunk], load: Callable[[Chunk, int], Batch | None], ref: Any = None) -> Any:
        import dask
        import dask.array as da
        import xgboost.dask as dxgb

        parts = [part for chunk in chunks if (part := self._partition(chunk, load)) is not None]
        if not parts:
            raise ValueError("no rows to fit on")
        arrays = {
            name: da.concatenate([da.from_delayed(dask.delayed(p[name][0]), p[name][1], p[name][2]) for p in parts])
            for name in parts[0]
        }
        with self.client.as_current():  # xgboost.dask looks the client up even when given one
            return dxgb.DaskQuantileDMatrix(self.client, arrays.pop("data"), missing=np.nan, ref=ref, **arrays)

    def fit(self, params: dict[str, Any], train: Any, validation: Any | None, n_trees: int, early_stopping: int) -> Any:
        import xgboost.dask as dxgb

        # Each worker grows trees with its own thread count (dask worker --nthreads).
        native = {key: value for key, value in native_params(params).items() if key != "nthread"}
        evals = [(validation, "validation")] if validation is not None else None
        with self.client.as_current():
            result = dxgb.train(
                self.client,
                native,
                train,
                num_boost_round=n_trees,
                evals=evals,
                early_stopping_rounds=early_stopping if evals else None,
                verbose_eval=False,
            )
        return result["booster"]

    def card(self) -> dict[str, Any]:
        return {"engine": self.name, "dask_scheduler": self.address, "dask_workers": len(self.workers)}

    def release(self) -> None:
        """Drop the scattered batches (between models: each model loads its own columns and rows)."""
        self._scattered.clear()


def connect(cfg: TrainingSettings) -> Any:
    """A client of the configured scheduler with at least one worker, else DaskUnavailable naming the setting."""
    from distributed import Client

    address = cfg.dask_scheduler_address
    timeout = cfg.dask_connect_timeout_s
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise DaskUnavailable(
            f"the Dask scheduler at {address!r} ({SETTING}) did not answer in {timeout:.0f} s: {error}. Start it "
            "(infra/k8s/dask.yaml, or `dask scheduler` and `dask worker <address>`), or set the setting empty to "
            "train in one process."
        ) from error
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as error:
        client.close()
        raise DaskUnavailable(
            f"the Dask scheduler at {address!r} ({SETTING}) has no worker after {timeout:.0f} s: start `dask worker "
            f"{address}`"
        ) from error
    return client


@contextlib.contextmanager
def fit_engine(cfg: TrainingSettings) -> Iterator[FitEngine]:
    """The engine the train step fits with: xgboost.dask when training.dask_scheduler_address is set, else in-process
    XGBoost."""
    if not cfg.dask_scheduler_address:
        yield IN_PROCESS
        return
    client = connect(cfg)
    try:
        engine = DaskFit(client, cfg.dask_scheduler_address)
        log.info("fitting through xgboost.dask: scheduler %s, %d workers", engine.address, len(engine.workers))
        yield engine
    finally:
        client.close()
