"""XGBoost fed from the training set's chunks: a DataIter per split, QuantileDMatrix, never a whole frame.

XGBoost walks the iterator to sketch the quantiles, then again to quantize each batch: memory holds the quantized
matrix (about a byte per feature and row) and one chunk at a time. Ranking: each chunk holds whole requests and
its qid continues where the previous chunk's stopped, so groups are never split and qid ascends across batches
(XGBoost turns each batch's qid into group boundaries and appends them).

Impression down-sampling (training.negative_sample_rate < 1): for the CTR model, non-clicked rows of the fit days
are kept with that probability (a hash of impression_id and the seed, so reproducible) and weigh 1/rate, which keeps
the model's probabilities calibrated in expectation. The CVR model trains on clicks only (nothing to sample). The
ranker never drops rows inside a slate: that would change the list LambdaMART's pairs and NDCG weights are computed
on (XGBoost's ranking weights are per group, so no per-row correction exists). Validation and holdout are never
sampled.

At scale both are capped (training.max_fit_negatives, max_ranker_rows): above the cap the CTR model's negative rate
drops to keep about that many non-clicked rows (still weighted 1/rate), and the ranker keeps a uniform sample of
whole requests (a hash of request_id; no weights needed, every kept list is whole). Tree building costs about rows
x trees, so the cap bounds the fits' time and memory while the set grows; default-size worlds stay below both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd
import xgboost as xgb
from xgboost import XGBClassifier, XGBRanker

from shoprank.ranking_features import model_matrix
from shoprank.settings import TrainingSettings
from training.chunks import Chunk, read_chunk
from training.models import tree_params, with_positive_groups, with_tree_floor

log = logging.getLogger(__name__)

Batch = dict[str, Any]


def keep_negatives(impression_ids: pd.Series, rate: float, seed: int) -> np.ndarray:
    """A reproducible Bernoulli(rate) draw per id (impression, or request: every row of a request draws alike): the
    same rows are kept on every pass and every run."""
    if rate >= 1:
        return np.ones(len(impression_ids), dtype=bool)
    hashed = pd.util.hash_pandas_object(impression_ids.astype(str), index=False, hash_key=f"shoprank{seed:08d}")
    return (hashed.to_numpy(dtype=np.uint64) / np.float64(2**64)) < rate


def sampled_rows(
    frame: pd.DataFrame, rate: float, seed: int, drawn: np.ndarray | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Clicked rows and a ``rate`` share of the others, with their weights (1 or 1/rate). ``drawn``: the rows'
    keep_negatives draw, when the caller kept it from an earlier pass over the same rows."""
    if rate >= 1:  # nothing sampled: no hashing, no copy
        return frame, np.ones(len(frame))
    negative = frame["label_click"].to_numpy() == 0
    keep = ~negative | (keep_negatives(frame["impression_id"], rate, seed) if drawn is None else drawn)
    weights = np.where(negative[keep], 1.0 / rate, 1.0)
    return frame[keep].reset_index(drop=True), weights


class ChunkIter(xgb.DataIter):
    """The batches ``load`` makes of ``chunks``, one chunk at a time (``load`` returns DataIter input_data kwargs,
    None for a chunk with nothing to feed); each batch's qid starts after the previous batch's last."""

    def __init__(self, chunks: list[Chunk], load: Callable[[Chunk, int], Batch | None]) -> None:
        self._chunks, self._load = chunks, load
        self._at = 0
        self._qid_offset = 0
        super().__init__(release_data=True)

    def next(self, input_data: Callable[..., None]) -> bool:
        while self._at < len(self._chunks):
            batch = self._load(self._chunks[self._at], self._qid_offset)
            self._at += 1
            if batch is None:
                continue
            if "qid" in batch:
                self._qid_offset = int(batch["qid"][-1]) + 1
            input_data(**batch)
            return True
        return False

    def reset(self) -> None:
        self._at = 0
        self._qid_offset = 0


def ranker_loader(
    feature_columns: list[str], request_rate: float = 1.0, seed: int = 0
) -> Callable[[Chunk, int], Batch | None]:
    """Batches of the clicked requests of a chunk; with ``request_rate`` < 1 a reproducible sample of them."""
    columns = [*feature_columns, "request_id", "relevance"]

    def load(chunk: Chunk, qid_offset: int) -> Batch | None:
        frame = with_positive_groups(read_chunk(chunk, columns))
        if request_rate < 1:
            frame = frame[keep_negatives(frame["request_id"], request_rate, seed)].reset_index(drop=True)
        if frame.empty:
            return None
        qid = pd.factorize(frame["request_id"], sort=True)[0].astype(np.int64) + qid_offset
        return {"data": model_matrix(frame, feature_columns), "label": frame["relevance"].to_numpy(), "qid": qid}

    return load


def classifier_loader(
    feature_columns: list[str], label: str, clicks_only: bool, sample_rate: float, seed: int
) -> Callable[[Chunk, int], Batch | None]:
    columns = [*feature_columns, "impression_id", "label_click", label]
    columns = list(dict.fromkeys(columns))
    # Each chunk's draw, hashed once: a QuantileDMatrix walks its chunks twice and the refit walks them again (the
    # impression-id hashing was ~5% of `train` at 1M events). A bool a row.
    draws: dict[str, np.ndarray] = {}

    def load(chunk: Chunk, _: int) -> Batch | None:
        frame = read_chunk(chunk, columns)
        if clicks_only:
            frame = frame[frame["label_click"] == 1].reset_index(drop=True)
        if sample_rate < 1 and chunk.path not in draws:
            draws[chunk.path] = keep_negatives(frame["impression_id"], sample_rate, seed)
        frame, weights = sampled_rows(frame, sample_rate, seed, draws.get(chunk.path))
        if frame.empty:
            return None
        return {"data": model_matrix(frame, feature_columns), "label": frame[label].to_numpy(), "weight": weights}

    return load


def native_params(params: dict[str, Any]) -> dict[str, Any]:
    """The sklearn-style params of training.models.tree_params under XGBoost's native names."""
    renamed = {"random_state": "seed", "n_jobs": "nthread"}
    return {renamed.get(key, key): value for key, value in params.items()}


class FitEngine(Protocol):
    """Where the matrices live and who grows the trees: this process (InProcessFit) or a Dask cluster
    (training.dask_fit.DaskFit). The fits below are the same on both."""

    name: str

    def matrix(self, chunks: list[Chunk], load: Callable[[Chunk, int], Batch | None], ref: Any = None) -> Any: ...

    def fit(
        self, params: dict[str, Any], train: Any, validation: Any | None, n_trees: int, early_stopping: int
    ) -> Any: ...

    def release(self) -> None: ...

    def card(self) -> dict[str, Any]:
        """What the model card records about the engine (training.train.CandidateCard's engine fields)."""
        ...


class InProcessFit:
    """QuantileDMatrix over a DataIter of the chunks, xgboost.train with the params' threads."""

    name = "xgboost"

    def matrix(self, chunks: list[Chunk], load: Callable[[Chunk, int], Batch | None], ref: Any = None) -> Any:
        return xgb.QuantileDMatrix(ChunkIter(chunks, load), ref=ref, missing=np.nan)

    def fit(self, params: dict[str, Any], train: Any, validation: Any | None, n_trees: int, early_stopping: int) -> Any:
        if validation is None:
            return xgb.train(native_params(params), train, num_boost_round=n_trees, verbose_eval=False)
        return xgb.train(
            native_params(params),
            train,
            num_boost_round=n_trees,
            evals=[(validation, "validation")],
            early_stopping_rounds=early_stopping,
            verbose_eval=False,
        )

    def release(self) -> None:
        """Nothing held between models: the DataIter re-reads the chunks."""

    def card(self) -> dict[str, Any]:
        return {"engine": self.name, "dask_scheduler": "", "dask_workers": 0}


IN_PROCESS = InProcessFit()


def _as_sklearn(booster: Any, estimator: type, params: dict[str, Any], n_trees: int) -> Any:
    """``booster``'s first ``n_trees`` trees as the sklearn estimator the rest of the platform loads and saves."""
    model = estimator(**params, n_estimators=n_trees)
    model.load_model(bytearray(booster[:n_trees].save_raw("json")))
    return model


def _has_rows(chunks: list[Chunk], load: Callable[[Chunk, int], Batch | None]) -> bool:
    return any(load(chunk, 0) is not None for chunk in chunks)


def capped_rate(rows: int, cap: int | None, rate: float = 1.0) -> float:
    """The sampling rate that keeps about ``cap`` of ``rows`` (``rate`` when that keeps fewer already)."""
    if cap is None or rows * rate <= cap:
        return rate
    return cap / rows


def ranker_request_rate(cfg: TrainingSettings, chunks: list[Chunk]) -> float:
    """The share of requests the ranker fits on: 1.0 unless the chunks hold more rows than max_ranker_rows."""
    return capped_rate(sum(chunk.rows for chunk in chunks), cfg.max_ranker_rows)


def fit_ranker_chunks(
    cfg: TrainingSettings,
    fit: list[Chunk],
    validation: list[Chunk],
    feature_columns: list[str],
    engine: FitEngine = IN_PROCESS,
) -> tuple[Any, dict[str, Any]]:
    """LambdaMART (rank:ndcg) grouped by request, as training.models.fit_ranker, fed chunk by chunk; the fit rows
    are a sample of whole requests above training.max_ranker_rows (module docstring), validation is whole."""
    try:
        return _fit_ranker(cfg, fit, validation, feature_columns, engine)
    finally:
        engine.release()


def _fit_ranker(
    cfg: TrainingSettings, fit: list[Chunk], validation: list[Chunk], feature_columns: list[str], engine: FitEngine
) -> tuple[Any, dict[str, Any]]:
    rate = ranker_request_rate(cfg, [*fit, *validation])
    whole = ranker_loader(feature_columns)
    load = ranker_loader(feature_columns, rate, cfg.seed) if rate < 1 else whole
    if not _has_rows(fit, load):
        raise ValueError("no training request has a click: nothing to learn from")
    params = {"objective": "rank:ndcg", **tree_params(cfg)}
    sampling = {"request_sample_rate": rate} if rate < 1 else {}
    fit_matrix = engine.matrix(fit, load)
    validation = [chunk for chunk in validation if whole(chunk, 0) is not None]
    n_trees = cfg.n_estimators
    if validation:
        validation_matrix = engine.matrix(validation, whole, ref=fit_matrix)
        probe = engine.fit(
            {**params, "eval_metric": f"ndcg@{cfg.ndcg_k}"},
            fit_matrix,
            validation_matrix,
            cfg.n_estimators,
            cfg.early_stopping_rounds,
        )
        picked = int(probe.best_iteration) + 1
        n_trees = with_tree_floor(picked, cfg.min_trees, cfg.n_estimators)
        if not cfg.refit_on_validation and n_trees == picked:
            model = _as_sklearn(probe, XGBRanker, params, n_trees)
            return model, {**params, "n_estimators": n_trees, "early_stopped": True, **sampling}
        del validation_matrix
    # Refit with that many trees on the fit days and (refit_on_validation) the validation days, in request order.
    refit = [*fit, *validation] if cfg.refit_on_validation else fit
    del fit_matrix
    booster = engine.fit(params, engine.matrix(refit, load), None, n_trees, cfg.early_stopping_rounds)
    log.info(
        "ranker: %d trees (early stopping on %d validation chunks, request rate %.4g)", n_trees, len(validation), rate
    )
    return _as_sklearn(booster, XGBRanker, params, n_trees), {
        **params,
        "n_estimators": n_trees,
        "early_stopped": bool(validation),
        **sampling,
    }


def label_classes(chunks: list[Chunk], label: str, clicks_only: bool) -> set[int]:
    """The classes ``label`` takes over ``chunks`` (clicked rows only with ``clicks_only``)."""
    seen: set[int] = set()
    for chunk in chunks:
        frame = read_chunk(chunk, list(dict.fromkeys(["label_click", label])))
        if clicks_only:
            frame = frame[frame["label_click"] == 1]
        seen |= set(frame[label].astype(int).unique().tolist())
        if len(seen) == 2:
            break
    return seen


def count_negatives(chunks: list[Chunk]) -> int:
    """Non-clicked impressions in ``chunks`` (one column read per chunk)."""
    return sum(int((read_chunk(chunk, ["label_click"])["label_click"] == 0).sum()) for chunk in chunks)


def negative_rate(cfg: TrainingSettings, chunks: list[Chunk]) -> float:
    """negative_sample_rate, lowered to keep about max_fit_negatives of the chunks' non-clicked impressions."""
    if cfg.max_fit_negatives is None:
        return cfg.negative_sample_rate
    return capped_rate(count_negatives(chunks), cfg.max_fit_negatives, cfg.negative_sample_rate)


def fit_classifier_chunks(
    cfg: TrainingSettings,
    fit: list[Chunk],
    validation: list[Chunk],
    feature_columns: list[str],
    label: str,
    clicks_only: bool = False,
    engine: FitEngine = IN_PROCESS,
) -> tuple[Any, dict[str, Any]]:
    """A binary:logistic model of ``label`` (on clicked rows only with ``clicks_only``), as
    training.models.fit_classifier, fed chunk by chunk; fit rows down-sampled (module docstring)."""
    try:
        return _fit_classifier(cfg, fit, validation, feature_columns, label, clicks_only, engine)
    finally:
        engine.release()


def _fit_classifier(
    cfg: TrainingSettings,
    fit: list[Chunk],
    validation: list[Chunk],
    feature_columns: list[str],
    label: str,
    clicks_only: bool,
    engine: FitEngine,
) -> tuple[Any, dict[str, Any]]:
    if len(label_classes([*fit, *validation], label, clicks_only)) < 2:
        return None, {"skipped": f"{label} has a single class"}
    rate = 1.0 if clicks_only else negative_rate(cfg, [*fit, *validation])
    sampled = classifier_loader(feature_columns, label, clicks_only, rate, cfg.seed)
    whole = classifier_loader(feature_columns, label, clicks_only, 1.0, cfg.seed)
    params = {"objective": "binary:logistic", **tree_params(cfg)}
    n_trees = cfg.classifier_n_estimators
    two_classes = len(label_classes(fit, label, clicks_only)) == 2
    if validation and two_classes and len(label_classes(validation, label, clicks_only)) == 2:
        fit_matrix = engine.matrix(fit, sampled)
        probe = engine.fit(
            {**params, "eval_metric": "logloss"},
            fit_matrix,
            engine.matrix(validation, whole, ref=fit_matrix),
            n_trees,
            cfg.early_stopping_rounds,
        )
        n_trees = with_tree_floor(int(probe.best_iteration) + 1, cfg.min_trees, n_trees)
        del fit_matrix
    # The final model learns from every training day; the validation days are sampled like the fit days here.
    booster = engine.fit(params, engine.matrix([*fit, *validation], sampled), None, n_trees, cfg.early_stopping_rounds)
    sampling = {"negative_sample_rate": rate} if rate < 1 and not clicks_only else {}
    return _as_sklearn(booster, XGBClassifier, params, n_trees), {**params, "n_estimators": n_trees, **sampling}
