"""The query-item relevance model: trained on aggregated human grades, scored on any (query, item) pair.

Features are what a person judging the pair sees, plus one log statistic: text match (the query's noun and
adjective in the title, token overlap), whether the item is a promotion, its category and price, and the share of
the query's search clicks that went to the item's category (which category the query means). It predicts
P(grade >= 2), "relevant"; its score is the search-ranking feature ``relevance_score``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from labelling.grades import PROMOTION_SUFFIXES, is_promotion

FEATURES = (
    "noun_match",
    "adjective_match",
    "query_has_adjective",
    "token_overlap",
    "promotion",
    "category_id",
    "log_price",
    "query_category_click_share",
    "query_category_impression_share",
)
RELEVANT_GRADE = 2
N_GRADES = 4


def _split(text: pd.Series) -> pd.Series:
    bare = text.fillna("").astype(str)
    for suffix in PROMOTION_SUFFIXES:
        bare = bare.str.removesuffix(suffix)
    return bare.str.split(" ")


def _category_shares(log_pairs: pd.DataFrame, column: str) -> pd.Series:
    per = log_pairs.groupby(["query", "category_id"])[column].sum()
    return (per / per.groupby(level=0).transform("sum").replace(0, np.nan)).fillna(0.0)


def features(pairs: pd.DataFrame, log_pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Model inputs for ``pairs`` (query, title, category_id, price); click shares come from ``log_pairs``
    (the search log's pairs with impressions and clicks; default: ``pairs`` themselves)."""
    log_pairs = pairs if log_pairs is None else log_pairs
    q, t = _split(pairs["query"]), _split(pairs["title"])
    q_noun, t_noun = q.str[-1], t.str[-1]
    q_adj = q.map(lambda w: w[0] if len(w) > 1 else "")
    t_adj = t.map(lambda w: w[0] if len(w) > 1 else "")
    overlap = [len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(q, t, strict=True)]
    key = pd.MultiIndex.from_arrays([pairs["query"], pairs["category_id"]])
    out = pd.DataFrame(
        {
            "noun_match": (q_noun == t_noun).astype(float),
            "adjective_match": np.where(q_adj == "", 0.0, np.where(q_adj == t_adj, 1.0, -1.0)),
            "query_has_adjective": (q_adj != "").astype(float),
            "token_overlap": overlap,
            "promotion": is_promotion(pairs["title"]).astype(float),
            "category_id": pairs["category_id"].astype(float),
            "log_price": np.log1p(pairs["price"].astype(float)),
            "query_category_click_share": _category_shares(log_pairs, "clicks").reindex(key).fillna(0.0).to_numpy(),
            "query_category_impression_share": _category_shares(log_pairs, "impressions")
            .reindex(key)
            .fillna(0.0)
            .to_numpy(),
        },
        index=pairs.index,
    )
    return out[list(FEATURES)]


class RelevanceModel:
    """A 4-grade classifier: :meth:`predict` is P(grade >= 2), :meth:`suggest` the most likely grade (pre-label)."""

    def __init__(self, booster: xgb.XGBClassifier | None, classes: np.ndarray, prior: np.ndarray) -> None:
        self.booster = booster
        self.classes = classes  # the grades the booster's columns stand for
        self.prior = prior  # grade shares of the training labels (used alone when only one grade was seen)

    @classmethod
    def fit(cls, x: pd.DataFrame, grades: pd.Series | np.ndarray, seed: int = 19) -> RelevanceModel:
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
        model.fit(x.to_numpy(dtype=float), np.searchsorted(classes, y))
        return cls(model, classes, prior)

    def grade_probabilities(self, x: pd.DataFrame) -> np.ndarray:
        out = np.tile(self.prior, (len(x), 1))
        if self.booster is not None:
            out[:] = 0.0
            out[:, self.classes] = self.booster.predict_proba(x.to_numpy(dtype=float))
        return out

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.grade_probabilities(x)[:, RELEVANT_GRADE:].sum(axis=1)

    def suggest(self, x: pd.DataFrame) -> np.ndarray:
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
        booster = xgb.XGBClassifier()
        booster.load_model(path)
        classes = np.array(json.loads(path.with_suffix(".classes.json").read_text()), dtype=int)
        return cls(booster, classes, np.full(N_GRADES, 1.0 / N_GRADES))


def auc(model: RelevanceModel, x: pd.DataFrame, true_grades: np.ndarray) -> float:
    """ROC AUC of the model's score against the true relevance (grade >= 2)."""
    y = (np.asarray(true_grades) >= RELEVANT_GRADE).astype(int)
    return float(roc_auc_score(y, model.predict(x)))
