"""Open the Feast feature store of the active profile (training and serving read through it).

The repo's ``feature_store.yaml`` reads its paths from the environment that :func:`apply_runtime_env` exports, so
these functions and a ``feast`` CLI run from ``feature_repo/`` act on the same registry and online store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from shoprank.settings import Settings, apply_runtime_env

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

YAML_FILE = "feature_store.yaml"


def feature_store_yaml(settings: Settings) -> Path:
    """feature_store.yaml for `local`; feature_store.<profile>.yaml for another profile when the repo has one."""
    profiled = settings.feature_repo_dir / f"feature_store.{settings.profile}.yaml"
    return profiled if settings.profile != "local" and profiled.exists() else settings.feature_repo_dir / YAML_FILE


def get_feature_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore

    apply_runtime_env(settings)
    settings.feast_registry_path.parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(settings.feature_repo_dir), fs_yaml_file=feature_store_yaml(settings))
