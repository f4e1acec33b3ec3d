"""What a request is served with under the running experiments: the user's arms applied to the serving state.

A pure stage before ranking: the user's arm in each running experiment (assignment.py) swaps the model and its
feature reader, the rules, or asks for a team-draft interleaving of two models; layers apply in the file's order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from serving.experiments.assignment import assign
from serving.online_features import OnlineFeatureReader
from serving.schemas import RankResponse
from serving.state import ServingState


@dataclass(frozen=True)
class Route:
    state: ServingState
    apply_rules: bool = True
    # The first running experiment's name and the user's arm in it (what /rank reports); every assignment below.
    experiment: str | None = None
    arm: str | None = None
    assignments: dict[str, str] = field(default_factory=dict)
    # Interleaving arm: the two states (model A, model B), their tags as the file names them, and one reader of
    # both models' features (the slate's user read is shared; None: the union is built per request).
    interleave: tuple[ServingState, ServingState] | None = None
    interleave_tags: tuple[str, str] | None = None
    interleave_reader: OnlineFeatureReader | None = None


def _with_model(state: ServingState, tag: str) -> ServingState:
    champion, reader = state.arm_models[tag]
    return replace(state, champion=champion, reader=reader)


def route(state: ServingState, user_id: str, now: datetime) -> Route:
    """The serving state, rules switch and interleaving the user's arms ask for (the state itself without any)."""
    assignments = assign(state.experiments, user_id, now)
    if not assignments:
        return Route(state)
    served, apply_rules = state, True
    interleave, interleave_tags = None, None
    for assignment in assignments:
        arm = assignment.arm
        if arm.model_tag:
            served = _with_model(served, arm.model_tag)
        if arm.rules_file is not None:
            served = replace(served, rules=state.arm_rules[str(arm.rules_file)])
        apply_rules = apply_rules and arm.rules
        if arm.interleave:
            interleave_tags = arm.interleave
    if interleave_tags is not None:
        interleave = (_with_model(served, interleave_tags[0]), _with_model(served, interleave_tags[1]))
    first = assignments[0]
    return Route(
        state=served,
        apply_rules=apply_rules,
        experiment=first.experiment,
        arm=first.arm.name,
        assignments={a.experiment: a.arm.name for a in assignments},
        interleave=interleave,
        interleave_tags=interleave_tags,
        interleave_reader=state.interleave_readers.get(interleave_tags) if interleave_tags else None,
    )


def experiment_columns(route: Route, response: RankResponse) -> dict[str, str | None]:
    """The request log's experiment columns (nullable; serving/request_log.py REQUEST_SCHEMA): the first experiment
    and arm, every assignment, and for an interleaved slate the two models and each shown item's team (JSON)."""
    teams = {i.item_id: i.ranker for i in response.items if i.ranker} if route.interleave else None
    return {
        "experiment": route.experiment,
        "arm": route.arm,
        "assignments": json.dumps(route.assignments, sort_keys=True) if route.assignments else None,
        "interleaved": "|".join(str(m) for m in response.interleaved) if response.interleaved else None,
        "interleave_teams": json.dumps(teams, sort_keys=True) if teams else None,
    }
