"""Which model serves: the champion in the BentoML model store (``settings.model_store_dir`` = BENTOML_HOME).

Resolution order, in one place so the promotion logic can change without touching the service:
1. ``SHOPRANK_MODEL_TAG`` (e.g. ``shoprank_ranker:abc123``) pins a model;
2. otherwise the champion promoted by the gate (``training.registry.champion_tag``: <home>/models/registry.json);
3. otherwise ``<model_name>:latest``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from shoprank.settings import Settings, apply_runtime_env

MODEL_TAG_ENV = "SHOPRANK_MODEL_TAG"


@dataclass
class LoadedModel:
    model: Any
    tag: str
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def feature_service(self) -> str:
        return str(self.metadata["feature_service"])

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["feature_columns"])

    @property
    def n_categories(self) -> int:
        return int(self.metadata["n_categories"])


def resolve_champion_tag(settings: Settings) -> str:
    """The tag of the model to serve (see the module docstring)."""
    apply_runtime_env(settings)
    import bentoml

    pinned = os.environ.get(MODEL_TAG_ENV)
    if pinned:
        return str(bentoml.models.get(pinned).tag)
    from training.registry import champion_tag

    champion = champion_tag(settings)
    if champion:
        return str(bentoml.models.get(champion).tag)
    return str(bentoml.models.get(f"{settings.training.model_name}:latest").tag)


def load_champion(settings: Settings) -> LoadedModel:
    """Load the champion's XGBoost ranker with its tag, metadata (the model card) and labels."""
    apply_runtime_env(settings)
    import bentoml

    bento_model = bentoml.models.get(resolve_champion_tag(settings))
    model = bentoml.xgboost.load_model(bento_model)
    missing = {"feature_service", "feature_columns", "n_categories"} - set(bento_model.info.metadata)
    if missing:
        raise ValueError(f"model {bento_model.tag} lacks metadata {sorted(missing)}")
    return LoadedModel(
        model=model,
        tag=str(bento_model.tag),
        metadata=dict(bento_model.info.metadata),
        labels=dict(bento_model.info.labels),
    )
