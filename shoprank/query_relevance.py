"""The query-item relevance model as a search-ranking feature: pure code shared by labelling, training and serving.

Labelling (labelling/workflow.py) trains it on the aggregated human grades and saves one version per labelled day
under ``<home>/models/relevance/<labels_through>/`` (model, classes, card). Its inputs are only what a request and
the catalogue give (the query's words against the title's, promotion, category, price), so serving computes its
score per search candidate and training per search impression with the same :func:`pair_features`.

Point in time: a row of day D (a training impression, or a request served on D) is scored by the newest version
whose labels all come from days before D (:func:`load_for_day`); no version yet, the feature is missing (NaN).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.settings import Settings

# The ranker's feature (shoprank/feature_contract.py's "relevance" group): the model's P(grade >= 2).
COLUMN = "query_item_relevance"
PROMOTION_SUFFIXES = (" review video", " live deal")
SERVED_FEATURES = (
    "noun_match",
    "adjective_match",
    "query_has_adjective",
    "token_overlap",
    "promotion",
    "category_id",
    "log_price",
)
RELEVANT_GRADE = 2
N_GRADES = 4
MODEL_FILE = "model.json"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class Text:
    """A query or title as the features read it: its words without a promotion suffix, adjective and noun."""

    words: tuple[str, ...]
    adjective: str
    noun: str
    promotion: bool


def parse(text: str | None) -> Text:
    bare = text.lower() if isinstance(text, str) else ""
    promotion = bare.endswith(PROMOTION_SUFFIXES)
    for suffix in PROMOTION_SUFFIXES:
        bare = bare.removesuffix(suffix)
    words = tuple(bare.split(" "))
    return Text(words, words[0] if len(words) > 1 else "", words[-1], promotion)


def pair_features(
    queries: Sequence[str | None] | str | None,
    titles: Sequence[Text],
    category_ids: np.ndarray | Sequence[float],
    prices: np.ndarray | Sequence[float],
) -> np.ndarray:
    """SERVED_FEATURES of (query, item) pairs as a float matrix, one row per title (``titles`` already parsed);
    ``queries`` is one query for every row (a request) or one per row (a training set)."""
    n = len(titles)
    per_row = [queries] * n if queries is None or isinstance(queries, str) else list(queries)
    parsed: dict[str | None, Text] = {}
    out = np.empty((n, len(SERVED_FEATURES)), dtype=float)
    for i, (query, title) in enumerate(zip(per_row, titles, strict=True)):
        q = parsed.get(query) or parsed.setdefault(query, parse(query))
        out[i, 0] = q.noun == title.noun
        out[i, 1] = 0.0 if not q.adjective else (1.0 if q.adjective == title.adjective else -1.0)
        out[i, 2] = bool(q.adjective)
        out[i, 3] = len(set(q.words) & set(title.words)) / max(len(q.words), 1)
        out[i, 4] = title.promotion
    out[:, 5] = np.asarray(category_ids, dtype=float)
    out[:, 6] = np.log1p(np.asarray(prices, dtype=float))
    return out


def pair_frame(pairs: pd.DataFrame) -> pd.DataFrame:
    """SERVED_FEATURES of ``pairs`` (query, title, category_id, price) as a frame on ``pairs``' index."""
    titles = [parse(t) for t in pairs["title"]]
    matrix = pair_features(list(pairs["query"]), titles, pairs["category_id"], pairs["price"])
    return pd.DataFrame(matrix, columns=list(SERVED_FEATURES), index=pairs.index)


class RelevanceModel:
    """A 4-grade classifier: :meth:`predict` is P(grade >= 2), :meth:`suggest` the most likely grade (pre-label)."""

    def __init__(self, booster: Any, classes: np.ndarray, prior: np.ndarray) -> None:
        self.booster = booster  # an xgboost.XGBClassifier, None for a constant model
        self.classes = classes  # the grades the booster's columns stand for
        self.prior = prior  # grade shares of the training labels (used alone when only one grade was seen)

    @classmethod
    def fit(cls, x: pd.DataFrame | np.ndarray, grades: pd.Series | np.ndarray, seed: int = 19) -> RelevanceModel:
        import xgboost as xgb

        y = np.asarray(grades, dtype=int)
        if len(y) == 0:
            raise ValueError("no labels to train the relevance model on")
        prior = np.bincount(y, minlength=N_GRADES) / len(y)
        classes = np.unique(y)
        if len(classes) < 2:  # one grade only: a constant model, honest about knowing nothing else
            return cls(None, classes, prior)
        model = xgb.XGBClassifier(
            n_estimators=80, max_depth=3, learning_rate=0.2, random_state=seed, n_jobs=1, base_score=None
        )
        model.fit(np.asarray(x, dtype=float), np.searchsorted(classes, y))
        return cls(model, classes, prior)

    def grade_probabilities(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        out = np.tile(self.prior, (len(x), 1))
        if self.booster is not None and len(x):
            out[:] = 0.0
            out[:, self.classes] = self.booster.predict_proba(np.asarray(x, dtype=float))
        return out

    def predict(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.grade_probabilities(x)[:, RELEVANT_GRADE:].sum(axis=1)

    def suggest(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.grade_probabilities(x).argmax(axis=1)

    def save(self, path: Path) -> Path:
        if self.booster is None:
            raise ValueError("a constant relevance model (one grade of labels) is not saved")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(path)
        path.with_suffix(".classes.json").write_text(json.dumps([int(c) for c in self.classes]))
        return path

    @classmethod
    def load(cls, path: Path) -> RelevanceModel:
        import xgboost as xgb

        booster = xgb.XGBClassifier()
        booster.load_model(path)
        booster.set_params(n_jobs=1)
        classes = np.array(json.loads(path.with_suffix(".classes.json").read_text()), dtype=int)
        return cls(booster, classes, np.full(N_GRADES, 1.0 / N_GRADES))


# ---- the versioned store ------------------------------------------------------------------------------------
def grades_path(settings: Settings) -> Path:
    """The aggregated human grades (labelling's output): pair_id, query, item_id, grade, day, ..."""
    return settings.labels_dir / "grades.parquet"


def models_dir(settings: Settings) -> Path:
    return settings.home_dir / "models" / "relevance"


def versions(settings: Settings) -> list[date]:
    """Saved versions, oldest first; a version is named by the last labelling day its grades come from."""
    root = models_dir(settings)
    found = []
    for path in root.glob(f"*/{CARD_FILE}") if root.exists() else ():
        try:
            found.append(date.fromisoformat(path.parent.name))
        except ValueError:
            continue
    return sorted(found)


def save_version(settings: Settings, model: RelevanceModel, labels_through: date, card: dict[str, Any]) -> Path:
    """Save ``model`` as the version ``labels_through`` with its card (written last: a version without a card
    is not listed)."""
    out = models_dir(settings) / labels_through.isoformat()
    model.save(out / MODEL_FILE)
    full = {"version": labels_through.isoformat(), "features": list(SERVED_FEATURES), "column": COLUMN, **card}
    (out / CARD_FILE).write_text(json.dumps(full, indent=2, default=float))
    return out


def card(settings: Settings, version: date) -> dict[str, Any]:
    return json.loads((models_dir(settings) / version.isoformat() / CARD_FILE).read_text())


def version_for_day(settings: Settings, day: date) -> date | None:
    """The newest version trained only on labels from days before ``day``."""
    usable = [v for v in versions(settings) if v < day]
    return usable[-1] if usable else None


def load_version(settings: Settings, version: date) -> RelevanceModel:
    return RelevanceModel.load(models_dir(settings) / version.isoformat() / MODEL_FILE)


def load_for_day(settings: Settings, day: date) -> tuple[RelevanceModel, date] | None:
    version = version_for_day(settings, day)
    return None if version is None else (load_version(settings, version), version)


def load_latest(settings: Settings) -> tuple[RelevanceModel, date] | None:
    """The newest version (serving's: every label is from a day before today's requests)."""
    found = versions(settings)
    return None if not found else (load_version(settings, found[-1]), found[-1])


def score_pairs(
    model: RelevanceModel | None,
    queries: Sequence[str | None] | str | None,
    titles: Sequence[Text],
    category_ids: np.ndarray | Sequence[float],
    prices: np.ndarray | Sequence[float],
) -> np.ndarray:
    """COLUMN for the pairs: NaN without a model, and for rows without a query (feed requests, as training)."""
    n = len(titles)
    if model is None or queries is None or n == 0:
        return np.full(n, np.nan)
    out = model.predict(pair_features(queries, titles, category_ids, prices))
    if not isinstance(queries, str):
        out[np.array([q is None or q != q for q in queries], dtype=bool)] = np.nan  # q != q: a NaN query
    return out
