"""Train the pre-ranker (shoprank/prerank.py) on the final ranker's point-in-time data: the `train-preranker` step.

Rows: the point-in-time training set of the impressions (training.pit_dataset, the same DuckDB join and Feast rule
as the final ranker's; feature service ranker_v1, which holds every item-side column and the category affinity).
The embedding score must be out of sample, as it is when serving scores tomorrow's requests with today's index:
the pre-ranker is fitted on the last ``recall.prerank_train_days`` days before the holdout, each row scored with an
implicit ALS fitted on the clicks of the days before those; the holdout rows with an ALS fitted on every day before
the holdout. The query match is each search impression's ``query_title_match`` from the query_item_match mart, as the
final ranker's training reads it (NaN on the feed; serving computes the same value per candidate). Model: a small
LambdaMART (``prerank_trees`` trees of depth ``prerank_depth``) grouped by request.
Target (``recall.prerank_target``): ``clicks`` ranks by each impression's click/purchase relevance; ``distill`` by
the final ranker's score (:func:`teacher`: the candidate the run's `train` step wrote before this step, else the
champion), each request's scores scaled to [0, 1] as the graded label: the pre-ranker learns to keep what the final
ranker would put first. The rows then come from the teacher's feature service (its columns hold the pre-ranker's).
Written to a temporary directory, renamed to ``<preranker_dir>/<day>/``, then ``CURRENT`` is replaced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank import prerank
from shoprank.mart_files import read_mart
from shoprank.model_bundle import ModelBundle
from shoprank.prerank import current_version
from shoprank.recall import EmbeddingIndex, als_vectors
from shoprank.settings import Settings
from training import preranker_gate
from training.chunks import Chunk, read_chunk, split_days
from training.evaluate import auc, ndcg_at_k
from training.pit_dataset import build_chunked_training_set
from training.train import code_version, json_safe

log = logging.getLogger(__name__)

FEATURE_SERVICE = "ranker_v1"  # its columns include every pre-ranker feature but the embedding score and query match
LEARNING_RATE = 0.2
# Catalogue items drawn per training request as non-clicks (about a slate's impressions; see with_catalogue_negatives)
SAMPLED_PER_REQUEST = 20
# Under prerank_target=distill: each training row's score by the final ranker (training/preranker.py teacher)
TEACHER_SCORE = "teacher_score"


def click_log(settings: Settings) -> pd.DataFrame:
    """Every click of the published training examples: user_id, item_id, event_ts, dt."""
    marts = settings.marts_export_dir.resolve()
    examples = read_mart(marts, "training_examples", ["user_id", "item_id", "event_ts", "label_click", "dt"])
    clicks = examples[examples["label_click"] > 0].drop(columns="label_click")
    clicks = clicks.assign(user_id=clicks["user_id"].astype(str), item_id=clicks["item_id"].astype(str))
    return clicks.assign(dt=pd.to_datetime(clicks["dt"]).dt.date)


def embedding_column(frame: pd.DataFrame, clicks: pd.DataFrame, settings: Settings) -> np.ndarray:
    """Each row's user x item inner product under an ALS fitted on ``clicks`` (NaN without vectors), the user's
    vector chosen as serving chooses it: their factors, else their category shares' centroid."""
    index = embedding_index(frame, clicks, settings)
    return embedding_scores_with(index, frame, settings)


def embedding_index(frame: pd.DataFrame, clicks: pd.DataFrame, settings: Settings) -> EmbeddingIndex | None:
    """An ALS fitted on ``clicks`` as an index (items' categories from ``frame``); None without two-click users."""
    ordered = clicks.sort_values(["user_id", "event_ts"])
    sequences = {str(u): list(items) for u, items in ordered.groupby("user_id", sort=True)["item_id"]}
    if not any(len(seq) > 1 for seq in sequences.values()):
        return None
    ids, vectors, user_ids, user_vectors = als_vectors(sequences, settings.recall)
    category_of = frame.drop_duplicates("item_id").set_index("item_id")["item_category_id"]
    categories = pd.to_numeric(category_of.reindex(ids), errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
    return EmbeddingIndex(None, ids, vectors, categories, user_ids, user_vectors)


def embedding_scores_with(index: EmbeddingIndex | None, frame: pd.DataFrame, settings: Settings) -> np.ndarray:
    """:func:`embedding_column`'s scores under an already fitted ``index`` (None: all NaN)."""
    out = np.full(len(frame), np.nan, dtype=np.float32)
    if index is None:
        return out
    vectors, user_vectors = index.vectors, index.user_vectors
    item_rows = frame["item_id"].astype(str).map(index.positions)
    has_item = item_rows.notna().to_numpy()
    item_rows = item_rows.fillna(0).to_numpy(dtype=np.int64)
    # users with factors: one vectorised product (the bulk of the rows)
    user_rows = frame["user_id"].astype(str).map(index.user_positions)
    factored = user_rows.notna().to_numpy()
    if user_vectors is not None and factored.any():
        both = factored & has_item
        users = user_rows.to_numpy()[both].astype(np.int64)
        out[both] = np.einsum("ij,ij->i", user_vectors[users], vectors[item_rows[both]])
    # the others: their category shares' centroid, per user and day (the shares change daily)
    share_columns = prerank_share_columns(frame, settings.simulator.categories)
    unfactored = np.flatnonzero(~factored)
    for (user, _day), positions in frame.iloc[unfactored].groupby(["user_id", "dt"], sort=False).indices.items():
        rows = unfactored[positions]
        shares = frame[share_columns].iloc[rows[0]].to_numpy(dtype=float) if share_columns else None
        user_vec = index.user_vector(str(user), [], shares)
        out[rows] = prerank.embedding_scores(user_vec, vectors[item_rows[rows]], has_item[rows])
    return out


def prerank_share_columns(frame: pd.DataFrame, n_categories: int) -> list[str]:
    from shoprank.ranking_features import category_share_columns

    columns = category_share_columns(n_categories)
    return columns if all(c in frame.columns for c in columns) else []


def read_rows(chunks: list[Chunk], n_categories: int, teacher: ModelBundle | None = None) -> pd.DataFrame:
    """The pre-ranker's columns of the chunks' rows; with ``teacher``, each row's ``teacher_score`` too (the final
    ranker's score on the row's full feature columns, computed chunk by chunk)."""
    from shoprank.ranking_features import category_share_columns

    stored = [f for f in prerank.FEATURES if f not in prerank.REQUEST_COLUMNS]
    wanted = ["impression_id", "request_id", "user_id", "item_id", "dt", "relevance", "label_click", *stored]
    if teacher is not None:
        wanted.append(TEACHER_SCORE)
    frames = []
    for chunk in chunks:
        frame = read_chunk(chunk)
        if teacher is not None:
            frame[TEACHER_SCORE] = teacher.score(frame)
        frames.append(frame[[c for c in [*wanted, *category_share_columns(n_categories)] if c in frame.columns]])
    if not frames:
        return pd.DataFrame(columns=wanted)
    rows = pd.concat(frames, ignore_index=True)
    return rows.sort_values(["request_id", "item_id"], kind="mergesort").reset_index(drop=True)


def query_lookups(settings: Settings) -> tuple[pd.DataFrame, pd.Series]:
    """What :func:`query_column` reads: the query_item_match mart's rows and the raw catalogue's titles by item."""
    marts = settings.marts_export_dir.resolve()
    matches = read_mart(marts, "query_item_match", ["impression_id", "request_id", "query", prerank.QUERY_MATCH])
    raw = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title"])
    return matches, raw.drop_duplicates("item_id", keep="last").set_index("item_id")["title"]


def query_column(
    frame: pd.DataFrame, settings: Settings, lookups: tuple[pd.DataFrame, pd.Series] | None = None
) -> np.ndarray:
    """Each row's query_title_match as the final ranker's training reads it: the query_item_match mart's value for
    a search impression (the SQL twin of shoprank.ranking_features.query_title_match; a test pins both), NaN for a
    feed one (the mart has no row for it, and serving gives a feed request NaN). A sampled row (no impression) of a
    search request gets query_title_match of the request's query and the item's raw title, as serving computes it."""
    from shoprank.ranking_features import query_title_match, title_words

    matches, titles = lookups if lookups is not None else query_lookups(settings)
    by_impression = matches.drop_duplicates("impression_id").set_index("impression_id")[prerank.QUERY_MATCH]
    out = frame["impression_id"].map(by_impression).to_numpy(dtype=np.float32, na_value=np.nan)
    sampled = frame["impression_id"].isna().to_numpy()
    if sampled.any():
        queries = matches.drop_duplicates("request_id").set_index("request_id")["query"]
        rows = frame[sampled]
        positions = np.flatnonzero(sampled)
        for request_id, at in rows.groupby("request_id", sort=False).indices.items():
            query = queries.get(request_id)
            if isinstance(query, str):
                words = [title_words(titles.get(item)) for item in rows["item_id"].iloc[at]]
                out[positions[at]] = query_title_match(query, words)
    return out


def with_catalogue_negatives(frame: pd.DataFrame, settings: Settings, per_request: int, seed: int) -> pd.DataFrame:
    """``frame`` plus, per request, ``per_request`` items drawn from its day's catalogue as non-clicks (relevance 0,
    no impression), with that day's item_features row (feature_ts the day's start: point in time for every request
    of the day) and the user's category affinity from the request's own share columns. Why: serving pre-ranks
    thousands of retrieved items, most unlike the impressions the logging policy chose; on impressions alone the
    model never sees, say, an off-query item on a search, and cannot learn to push one down."""
    from shoprank.ranking_features import ITEM_FEATURES, category_share_columns

    share_columns = [c for c in category_share_columns(settings.simulator.categories) if c in frame.columns]
    path = settings.marts_export_dir.resolve() / "item_features.parquet"
    items = pd.read_parquet(path, columns=["item_id", "dt", *ITEM_FEATURES])
    items["dt"] = pd.to_datetime(items["dt"]).dt.date
    requests = frame.drop_duplicates("request_id")[["request_id", "user_id", "dt", *share_columns]]
    rng = np.random.default_rng(seed)
    parts = []
    for day, on_day in requests.groupby(pd.to_datetime(requests["dt"]).dt.date, sort=True):
        catalogue = items[items["dt"] == day].drop(columns="dt").reset_index(drop=True)
        if catalogue.empty:
            continue
        drawn = catalogue.iloc[rng.integers(0, len(catalogue), size=len(on_day) * per_request)].reset_index(drop=True)
        repeated = on_day.loc[on_day.index.repeat(per_request)].reset_index(drop=True)
        parts.append(pd.concat([repeated, drawn], axis=1))
    if not parts:
        return frame
    sampled = pd.concat(parts, ignore_index=True)
    seen = pd.MultiIndex.from_frame(frame[["request_id", "item_id"]].astype(str))
    keys = pd.MultiIndex.from_frame(sampled[["request_id", "item_id"]].astype(str))
    sampled = sampled[~keys.isin(seen) & ~keys.duplicated()].reset_index(drop=True)
    shares = sampled[share_columns].to_numpy(dtype=float, na_value=0.0) if share_columns else None
    category = pd.to_numeric(sampled["item_category_id"], errors="coerce").to_numpy(dtype=float)
    affinity = np.zeros(len(sampled), dtype=np.float32)
    if shares is not None:
        known = np.isfinite(category) & (category >= 0) & (category < shares.shape[1])
        affinity[known] = shares[np.flatnonzero(known), category[known].astype(np.int64)]
    sampled = sampled.assign(impression_id=None, relevance=0, label_click=0, **{prerank.AFFINITY: affinity})
    merged = pd.concat([frame, sampled[[c for c in frame.columns if c in sampled.columns]]], ignore_index=True)
    return merged.sort_values(["request_id", "item_id"], kind="mergesort").reset_index(drop=True)


def teacher(settings: Settings, run_date: date) -> tuple[ModelBundle, str] | None:
    """The final ranker the pre-ranker imitates under ``prerank_target=distill``, and what it is (for the card): the
    candidate the run's `train` step wrote (it runs before `train-preranker`: dags/shoprank_daily.py follows
    orchestration.pipeline.STEPS), else the promoted champion; None when there is neither."""
    from shoprank.model_bundle import champion_tag, load_champion
    from training.registry import load_candidate_models
    from training.train import CARD_FILE, MODEL_FILE, candidate_dir

    candidate = candidate_dir(settings, run_date)
    if (candidate / CARD_FILE).exists() and (candidate / MODEL_FILE).exists():
        card = json.loads((candidate / CARD_FILE).read_text())
        ranker, extra = load_candidate_models(candidate)
        metadata = {key: card[key] for key in ("feature_service", "feature_columns", "n_categories")}
        bundle = ModelBundle(
            ranker=ranker,
            feature_columns=list(card["feature_columns"]),
            objective=str(card.get("objective", "ndcg")),
            metadata=metadata,
            **extra,
        )
        return bundle, f"candidate {run_date.isoformat()} ({candidate})"
    if champion_tag(settings) is None:
        return None
    champion = load_champion(settings)
    return champion, f"champion {champion.tag}"


def distilled_relevance(frame: pd.DataFrame) -> np.ndarray:
    """Per row, its request's teacher scores scaled to [0, 1] (the request's best 1, worst 0; a request whose rows
    all score the same: 0). Rows without a teacher score (sampled catalogue items) get 0."""
    scores = pd.to_numeric(frame[TEACHER_SCORE], errors="coerce")
    groups = scores.groupby(frame["request_id"], sort=False)
    low, high = groups.transform("min"), groups.transform("max")
    span = (high - low).where(high > low)
    return ((scores - low) / span).fillna(0.0).to_numpy(dtype=np.float32)


def matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame[prerank.FEATURES].to_numpy(dtype=np.float32, na_value=np.nan)


def fit(frame: pd.DataFrame, settings: Settings, distilled: bool = False) -> Any:
    """LambdaMART on ``frame["relevance"]`` (``distilled``: graded in [0, 1], linear gains)."""
    from xgboost import XGBRanker

    cfg = settings.recall
    gains = {"ndcg_exp_gain": False} if distilled else {}
    model = XGBRanker(
        objective="rank:ndcg",
        n_estimators=cfg.prerank_trees,
        max_depth=cfg.prerank_depth,
        learning_rate=LEARNING_RATE,
        tree_method="hist",
        random_state=settings.training.seed,
        n_jobs=1,
        **gains,
    )
    qid = pd.factorize(frame["request_id"])[0]
    model.fit(matrix(frame), frame["relevance"].to_numpy(dtype=np.float32), qid=qid)
    return model


def holdout_metrics(frame: pd.DataFrame, scores: np.ndarray, k: int) -> dict[str, float]:
    """NDCG@k on the holdout's impressions: the pre-ranker, popularity and the embedding score alone; click AUC."""
    scored = frame.assign(
        prerank=scores,
        popularity=frame["item_clicks_7d"].fillna(0.0),
        embedding=frame[prerank.EMBEDDING_SCORE].fillna(-np.inf),
    )
    out = {f"{name}_ndcg@{k}": ndcg_at_k(scored, name, k) for name in ("prerank", "popularity", "embedding")}
    out["prerank_click_auc"] = auc(scored["label_click"].to_numpy(), scores)
    out["embedding_coverage"] = float(np.isfinite(frame[prerank.EMBEDDING_SCORE]).mean())
    if TEACHER_SCORE in frame.columns:  # distill: how well it ranks each request as the final ranker does
        graded = scored.assign(teacher_relevance=distilled_relevance(frame))
        out[f"teacher_ndcg@{k}"] = ndcg_at_k(graded, "prerank", k, label_column="teacher_relevance")
        out[f"popularity_teacher_ndcg@{k}"] = ndcg_at_k(graded, "popularity", k, label_column="teacher_relevance")
    return out


def train_preranker(settings: Settings, run_date: date) -> dict[str, Any]:
    """Fit, evaluate and publish the run's pre-ranker; returns its card."""
    cfg = settings.training
    n_categories = settings.simulator.categories
    target = settings.recall.prerank_target
    found = teacher(settings, run_date) if target == "distill" else None
    if target == "distill" and found is None:
        log.warning("pre-ranker %s: no final ranker to distill (no candidate nor champion): on clicks", run_date)
        target = "clicks"
    final, teacher_name = found if found is not None else (None, "")
    feature_service = final.feature_service if final is not None else FEATURE_SERVICE
    scratch = settings.home_dir / "tmp" / "preranker" / run_date.isoformat()
    try:
        chunked = build_chunked_training_set(settings, run_date, feature_service, scratch / "set")
        fit_days, validation_days, holdout_days = split_days(
            chunked.days, cfg.holdout_days, cfg.burn_in_days, cfg.validation_days
        )
        train_days = [*fit_days, *validation_days][-settings.recall.prerank_train_days :]
        train = read_rows(chunked.on_days(train_days), n_categories, final)
        if settings.recall.prerank_sampled_negatives:
            train = with_catalogue_negatives(train, settings, SAMPLED_PER_REQUEST, settings.training.seed)
        holdout = read_rows(chunked.on_days(holdout_days), n_categories, final)
        # the gate's pools need every column of the final ranker's feature service (training/preranker_gate.py)
        gate_rows = pd.concat([read_chunk(c) for c in chunked.on_days(holdout_days)], ignore_index=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if train.empty or holdout.empty:
        raise ValueError(f"pre-ranker needs training and holdout days; the set has {chunked.days}")
    clicks = click_log(settings)
    train[prerank.EMBEDDING_SCORE] = embedding_column(train, clicks[clicks["dt"] < train_days[0]], settings)
    holdout_embeddings = embedding_index(holdout, clicks[clicks["dt"] < holdout_days[0]], settings)
    holdout[prerank.EMBEDDING_SCORE] = embedding_scores_with(holdout_embeddings, holdout, settings)
    lookups = query_lookups(settings)
    train[prerank.QUERY_MATCH] = query_column(train, settings, lookups)
    holdout[prerank.QUERY_MATCH] = query_column(holdout, settings, lookups)
    if final is not None:
        train["relevance"] = distilled_relevance(train)
    model = fit(train, settings, distilled=final is not None)
    scores = model.predict(matrix(holdout))
    metrics = holdout_metrics(holdout, scores, cfg.ndcg_k)
    gains = model.get_booster().get_score(importance_type="gain")

    def complete(pool: pd.DataFrame) -> pd.DataFrame:  # the gate's pool rows: the pre-ranker's request columns
        return pool.assign(
            **{
                prerank.EMBEDDING_SCORE: embedding_scores_with(holdout_embeddings, pool, settings),
                prerank.QUERY_MATCH: query_column(pool, settings, lookups),
            }
        )

    gate_metrics = preranker_gate.evaluate(
        settings, gate_rows, preranker_gate.search_request_ids(settings), model.predict, final, complete
    )
    del gate_rows
    published, reasons = preranker_gate.judge(settings, gate_metrics, teacher_name or None)
    decision = preranker_gate.GateDecision(run_date.isoformat(), published, reasons, gate_metrics, teacher_name or None)
    card = {
        "run_date": run_date.isoformat(),
        "features": prerank.FEATURES,
        "target": target,
        "teacher": teacher_name or None,
        "feature_service": feature_service,
        "train_window": [str(train_days[0]), str(train_days[-1])],
        "holdout_window": [str(holdout_days[0]), str(holdout_days[-1])],
        "embedding_window_end": {"train": str(train_days[0]), "holdout": str(holdout_days[0])},
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "params": {k: v for k, v in model.get_params().items() if v is not None and k != "missing"},
        "metrics": json_safe(metrics),
        "feature_importance": {prerank.FEATURES[int(f[1:])]: float(v) for f, v in sorted(gains.items())},
        "code_version": code_version(settings.project_root),
        "gate": {"published": published, "reasons": reasons, "metrics": decision.metrics},
    }
    log.info("pre-ranker %s: %s", run_date, {k: round(v, 4) for k, v in metrics.items()})
    preranker_gate.record(settings, decision)
    if not published:
        path = write_version(settings.preranker_gate_dir / "refused", run_date.isoformat(), model, card)
        served = current_version(settings.preranker_dir)
        log.warning("pre-ranker gate: REFUSE %s, serving stays %s: %s", run_date, served or "today's path", reasons)
        return {"path": str(path), **card}
    path = publish(settings.preranker_dir, run_date.isoformat(), model, card, settings.recall.versions_kept)
    log.info("pre-ranker gate: PUBLISH %s: %s", run_date, reasons)
    return {"path": str(path), **card}


def publish(root: Path, version: str, model: Any, card: dict[str, Any], kept: int) -> Path:
    """Write the version beside the others, card last, then point CURRENT at it; prune the oldest."""
    target = write_version(root, version, model, card)
    pointer = root / f".{prerank.CURRENT}.tmp-{os.getpid()}"
    pointer.write_text(version)
    os.replace(pointer, root / prerank.CURRENT)
    versions = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in [v for v in versions[:-kept] if v != version]:
        shutil.rmtree(root / name, ignore_errors=True)
    return target


def write_version(root: Path, version: str, model: Any, card: dict[str, Any]) -> Path:
    """``<root>/<version>/`` with the model and its card (card last), replacing a version of the same name whole."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{version}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model.save_model(tmp / prerank.MODEL_FILE)
        (tmp / prerank.CARD_FILE).write_text(json.dumps(card, indent=2))
        target = root / version
        if target.exists():  # a re-run of the day: replace it whole
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
