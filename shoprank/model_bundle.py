"""A trained model as the platform uses it: load it, score under its objective, explain a score.

The one definition of "the served score", shared by training's evaluation, the promotion gate, serving, monitoring
and replay: ``objective="ndcg"`` scores with the LambdaMART ranker; ``objective="gmv"`` with expected GMV,
pCTR x P(purchase | click) x price, from the CTR and CVR models (the price is the matrix's ``item_price`` column).

Which model serves (resolution order, in one place so promotion can change without touching the service):
1. ``SHOPRANK_MODEL_TAG`` (e.g. ``shoprank_ranker:abc123``) pins a model;
2. otherwise the champion the gate promoted (``<home>/models/registry.json``; training writes it);
3. otherwise ``<model_name>:latest``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank.ranking_features import model_matrix
from shoprank.settings import Settings, apply_runtime_env

MODEL_TAG_ENV = "SHOPRANK_MODEL_TAG"
PRICE_COLUMN = "item_price"
OBJECTIVES = ("ndcg", "gmv")
REQUIRED_METADATA = ("feature_service", "feature_columns", "n_categories")


@dataclass
class ModelBundle:
    """The ranker, and the CTR / CVR models when trained, with the columns they read in order."""

    ranker: Any
    feature_columns: list[str]
    objective: str = "ndcg"
    ctr: Any | None = None
    cvr: Any | None = None
    tag: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; one of {OBJECTIVES}")
        if self.objective == "gmv" and (self.ctr is None or self.cvr is None):
            raise ValueError("the gmv objective needs both the CTR and the CVR model")
        if self.objective == "gmv" and PRICE_COLUMN not in self.feature_columns:
            raise ValueError(f"the gmv objective needs {PRICE_COLUMN} among the feature columns")

    # ---- card fields ---------------------------------------------------------------------------------------------
    @property
    def feature_service(self) -> str:
        return str(self.metadata["feature_service"])

    @property
    def n_categories(self) -> int:
        return int(self.metadata["n_categories"])

    @property
    def model(self) -> Any:
        """The ranker (XGBRanker): its booster explains ndcg scores."""
        return self.ranker

    def models(self) -> list[Any]:
        """Every estimator the bundle scores with (e.g. to pin their thread count)."""
        return [m for m in (self.ranker, self.ctr, self.cvr) if m is not None]

    # ---- scoring on a model matrix (columns = feature_columns, float32, NaN = missing) ---------------------------
    def ranker_scores_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.ranker.predict(matrix), dtype=float).reshape(-1)

    def click_probability_matrix(self, matrix: np.ndarray) -> np.ndarray | None:
        if self.ctr is None:
            return None
        return np.asarray(self.ctr.predict_proba(matrix)[:, 1], dtype=float)

    def purchase_probability_matrix(self, matrix: np.ndarray) -> np.ndarray | None:
        """P(purchase) = pCTR x P(purchase | click)."""
        p_click = self.click_probability_matrix(matrix)
        if p_click is None or self.cvr is None:
            return None
        return p_click * np.asarray(self.cvr.predict_proba(matrix)[:, 1], dtype=float)

    def expected_gmv_matrix(self, matrix: np.ndarray) -> np.ndarray:
        p_purchase = self.purchase_probability_matrix(matrix)
        if p_purchase is None:
            raise ValueError("the gmv objective needs both the CTR and the CVR model")
        price = np.nan_to_num(matrix[:, self.feature_columns.index(PRICE_COLUMN)].astype(float), nan=0.0)
        return p_purchase * price

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """The served score under this bundle's objective."""
        if matrix.shape[0] == 0:
            return np.zeros(0)
        return self.expected_gmv_matrix(matrix) if self.objective == "gmv" else self.ranker_scores_matrix(matrix)

    def contributions_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Per row and feature, its contribution to the score (last column: the bias), in the model's margin.

        ndcg: the ranker's SHAP values. gmv: the sum of the CTR and CVR models' log-odds contributions, i.e. what
        moves log(pCTR / (1 - pCTR)) + log(pCVR / (1 - pCVR)); the price enters the score directly.
        """
        import xgboost as xgb

        dmatrix = xgb.DMatrix(matrix, missing=np.nan)
        if self.objective == "gmv":
            ctr, cvr = (np.asarray(m.get_booster().predict(dmatrix, pred_contribs=True)) for m in (self.ctr, self.cvr))  # type: ignore[union-attr]
            return ctr + cvr
        return np.asarray(self.ranker.get_booster().predict(dmatrix, pred_contribs=True))

    # ---- the same on frames (training, the gate, reports) ----------------------------------------------------------
    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return model_matrix(frame, self.feature_columns)

    def ranker_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.ranker_scores_matrix(self.matrix(frame))

    def click_probability(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self.click_probability_matrix(self.matrix(frame)) if self.ctr is not None else None

    def purchase_probability(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self.purchase_probability_matrix(self.matrix(frame)) if self.ctr is not None else None

    def expected_gmv(self, frame: pd.DataFrame) -> np.ndarray:
        return self.expected_gmv_matrix(self.matrix(frame))

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The served score under this bundle's objective, for the rows of ``frame``."""
        return self.score_matrix(self.matrix(frame))


def load_bundle(bento_model: Any) -> ModelBundle:
    """A registered model (``bentoml.models.get(tag)``) as a bundle: its ranker, and CTR/CVR models if saved."""
    import bentoml

    metadata = dict(bento_model.info.metadata)
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"model {bento_model.tag} lacks metadata {missing}")
    custom = bento_model.custom_objects or {}
    return ModelBundle(
        ranker=bentoml.xgboost.load_model(bento_model),
        feature_columns=list(metadata["feature_columns"]),
        objective=str(metadata.get("objective", "ndcg")),
        ctr=custom.get("ctr_model"),
        cvr=custom.get("cvr_model"),
        tag=str(bento_model.tag),
        metadata=metadata,
        labels=dict(bento_model.info.labels),
    )


# ---- which model serves --------------------------------------------------------------------------------------------
def registry_path(settings: Settings) -> Path:
    """The champion pointer with the line of champions (training/registry.py writes it, under a lock)."""
    return settings.home_dir / "models" / "registry.json"


def read_registry(settings: Settings) -> dict[str, Any]:
    path = registry_path(settings)
    if not path.exists():
        return {"champion": None, "stack": [], "events": []}
    return dict(json.loads(path.read_text()))


def champion_tag(settings: Settings) -> str | None:
    """The promoted champion's tag, or None when nothing was ever promoted (serving then falls back)."""
    champion = read_registry(settings).get("champion")
    return str(champion) if champion else None


def resolve_champion_tag(settings: Settings) -> str:
    """The tag of the model to serve (see the module docstring)."""
    apply_runtime_env(settings)
    import bentoml

    pinned = os.environ.get(MODEL_TAG_ENV)
    if pinned:
        return str(bentoml.models.get(pinned).tag)
    champion = champion_tag(settings)
    if champion:
        return str(bentoml.models.get(champion).tag)
    return str(bentoml.models.get(f"{settings.training.model_name}:latest").tag)


def load_champion(settings: Settings) -> ModelBundle:
    """The serving model: the champion's bundle, with its tag, card (metadata) and labels."""
    apply_runtime_env(settings)
    import bentoml

    return load_bundle(bentoml.models.get(resolve_champion_tag(settings)))
