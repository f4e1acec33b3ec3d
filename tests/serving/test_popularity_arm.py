"""An experiment arm serving the popularity order as a model (``model_tag: popularity``), in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from serving.experiments.assignment import arm_for
from serving.schemas import RankRequest
from serving.service import RankingService
from serving.state import load_state
from shoprank.ranking_features import POPULARITY_FEATURE

from .conftest import ServingWorld


def test_the_popularity_arm_ranks_by_popularity_through_the_model_path(
    serving_world: ServingWorld, tmp_path: Path
) -> None:
    arms = [{"name": "control", "share": 0.5}, {"name": "pop", "share": 0.5, "model_tag": "popularity"}]
    declared = {"version": "t", "experiments": [{"name": "pop", "layer": "model", "salt": "pop-1", "arms": arms}]}
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(declared))
    settings = serving_world.settings
    service = RankingService()
    service.state = load_state(
        settings.model_copy(update={"serving": settings.serving.model_copy(update={"experiments_path": path})})
    )
    assert service.state.experiments is not None and service.state.experiments_error is None
    experiment = service.state.experiments.experiments[0]
    candidates = serving_world.item_ids[:60]
    items = service.state.items
    clicks = np.nan_to_num(items.column(POPULARITY_FEATURE, items.rows(candidates)))
    popularity = dict(zip(candidates, clicks, strict=True))
    lists = {}
    for user in serving_world.user_ids[:12]:
        arm = arm_for(experiment, user).name
        response = service.rank(RankRequest(user_id=user, candidate_ids=candidates, k=10, apply_rules=False))
        assert response.arm == arm and not response.degraded, response.degraded_reasons
        ranked = [i.item_id for i in response.items]
        if arm == "pop":
            assert response.model_version == "popularity"
            assert [i.score for i in response.items] == pytest.approx([popularity[i] for i in ranked])
            assert [popularity[i] for i in ranked] == sorted(popularity.values(), reverse=True)[:10]
            assert all(i.reason == "model" for i in response.items)
        else:
            assert response.model_version == serving_world.model_tag
        lists.setdefault(arm, set()).add(tuple(ranked))
    assert set(lists) == {"control", "pop"}
    assert len(lists["pop"]) == 1  # the same list for everyone
