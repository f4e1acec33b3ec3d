"""How a trained model scores rows: the one place training, the gate and the report agree on it.

``objective="ndcg"`` scores with the LambdaMART ranker; ``objective="gmv"`` with expected GMV,
pCTR x pCVR x price, from the CTR and CVR models (pCVR is the purchase probability given a click).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shoprank.ranking_features import model_matrix

PRICE_COLUMN = "item_price"


@dataclass
class ModelBundle:
    ranker: Any
    feature_columns: list[str]
    objective: str = "ndcg"
    ctr: Any | None = None
    cvr: Any | None = None

    def ranker_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.ranker.predict(model_matrix(frame, self.feature_columns)), dtype=float)

    def click_probability(self, frame: pd.DataFrame) -> np.ndarray | None:
        if self.ctr is None:
            return None
        return np.asarray(self.ctr.predict_proba(model_matrix(frame, self.feature_columns))[:, 1], dtype=float)

    def purchase_probability(self, frame: pd.DataFrame) -> np.ndarray | None:
        """P(purchase) = pCTR x P(purchase | click)."""
        p_click = self.click_probability(frame)
        if p_click is None or self.cvr is None:
            return None
        p_buy = np.asarray(self.cvr.predict_proba(model_matrix(frame, self.feature_columns))[:, 1], dtype=float)
        return p_click * p_buy

    def expected_gmv(self, frame: pd.DataFrame) -> np.ndarray:
        p_purchase = self.purchase_probability(frame)
        if p_purchase is None:
            raise ValueError("the gmv objective needs both the CTR and the CVR model")
        price = pd.to_numeric(frame[PRICE_COLUMN], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        return p_purchase * price

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The served score under this bundle's objective."""
        return self.expected_gmv(frame) if self.objective == "gmv" else self.ranker_scores(frame)


def load_bundle(bento_model: Any) -> ModelBundle:
    """A registered model (``bentoml.models.get(tag)``) as a bundle: its ranker, and CTR/CVR models if saved."""
    import bentoml

    metadata = bento_model.info.metadata
    custom = bento_model.custom_objects or {}
    return ModelBundle(
        ranker=bentoml.xgboost.load_model(bento_model),
        feature_columns=list(metadata["feature_columns"]),
        objective=str(metadata.get("objective", "ndcg")),
        ctr=custom.get("ctr_model"),
        cvr=custom.get("cvr_model"),
    )
