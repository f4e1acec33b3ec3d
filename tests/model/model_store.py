"""A temporary BentoML model store for tests that register and promote real models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def bentoml_home(path: Path) -> Iterator[None]:
    """Point BentoML's model store at ``path`` even if this process already resolved BENTOML_HOME."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    path.mkdir(parents=True, exist_ok=True)
    with (
        BentoMLContainer.bentoml_home.patch(str(path)),
        BentoMLContainer.model_store_dir.patch(str(path / "models")),
        BentoMLContainer.model_store.patch(ModelStore(str(path / "models"))),
    ):
        yield
