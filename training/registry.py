"""The model registry: candidates go into the BentoML model store with their card as metadata."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from shoprank.settings import Settings, apply_runtime_env
from training.train import CARD_FILE, MODEL_FILE

log = logging.getLogger(__name__)


def register_candidate(settings: Settings, candidate: Path) -> dict[str, Any]:
    """Save the candidate at ``candidate`` to the model store; return its tag and metrics."""
    apply_runtime_env(settings)
    import bentoml
    from xgboost import XGBRanker

    card = json.loads((candidate / CARD_FILE).read_text())
    ranker = XGBRanker()
    ranker.load_model(candidate / MODEL_FILE)
    saved = bentoml.xgboost.save_model(
        settings.training.model_name,
        ranker,
        labels={"feature_service": card["feature_service"], "run_date": card["run_date"]},
        metadata=card,
    )
    log.info("registered %s with metrics %s", saved.tag, card["metrics"])
    return {"tag": str(saved.tag), "metrics": card["metrics"]}


def list_models(settings: Settings) -> list[dict[str, Any]]:
    """Registered models, newest first."""
    apply_runtime_env(settings)
    import bentoml

    models = sorted(bentoml.models.list(settings.training.model_name), key=lambda m: m.info.creation_time)
    return [
        {"tag": str(m.tag), "created": m.info.creation_time.isoformat(), "metrics": m.info.metadata.get("metrics")}
        for m in reversed(models)
    ]
