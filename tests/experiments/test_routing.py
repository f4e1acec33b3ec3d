"""Routing a request to its arms: the serving state each arm asks for (model and reader, rules, interleaving)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from serving.experiments.assignment import arm_for
from serving.experiments.config import ExperimentsConfig
from serving.experiments.routing import route
from serving.state import ServingState

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _state(config: dict[str, Any]) -> ServingState:
    # sentinels stand for the loaded bundles, readers and rules: routing only moves them around
    return ServingState(
        champion="champion-bundle",  # type: ignore[arg-type]
        reader="champion-reader",  # type: ignore[arg-type]
        rules="default-rules",  # type: ignore[arg-type]
        experiments=ExperimentsConfig.model_validate(config),
        arm_models={"m:2": ("bundle-2", "reader-2"), "champion": ("champion-bundle", "champion-reader")},  # type: ignore[dict-item]
        arm_rules={"other.yaml": "other-rules"},  # type: ignore[dict-item]
    )


CONFIG: dict[str, Any] = {
    "version": "t",
    "experiments": [
        {
            "name": "model",
            "layer": "model",
            "salt": "m",
            "arms": [{"name": "control", "share": 0.5}, {"name": "new", "share": 0.5, "model_tag": "m:2"}],
        },
        {
            "name": "rules",
            "layer": "rules",
            "salt": "r",
            "arms": [
                {"name": "off", "share": 0.3, "rules": False},
                {"name": "other", "share": 0.3, "rules_file": "other.yaml"},
                {"name": "tdi", "share": 0.4, "interleave": ["champion", "m:2"]},
            ],
        },
    ],
}


def test_each_arm_changes_what_it_names() -> None:
    state = _state(CONFIG)
    model, rules = state.experiments.experiments  # type: ignore[union-attr]
    seen = set()
    for user in [f"u{i}" for i in range(200)]:
        routed = route(state, user, NOW)
        model_arm, rules_arm = arm_for(model, user).name, arm_for(rules, user).name
        assert (routed.experiment, routed.arm) == ("model", model_arm)
        assert routed.assignments == {"model": model_arm, "rules": rules_arm}
        expected = ("bundle-2", "reader-2") if model_arm == "new" else ("champion-bundle", "champion-reader")
        assert (routed.state.champion, routed.state.reader) == expected
        assert routed.apply_rules == (rules_arm != "off")
        assert routed.state.rules == ("other-rules" if rules_arm == "other" else "default-rules")
        if rules_arm == "tdi":
            assert routed.interleave is not None and routed.interleave_tags == ("champion", "m:2")
            assert [s.champion for s in routed.interleave] == ["champion-bundle", "bundle-2"]
        else:
            assert routed.interleave is None
        seen.add((model_arm, rules_arm))
    assert len(seen) == 6


def test_outside_any_running_experiment_the_state_is_served_as_is() -> None:
    stopped = {**CONFIG, "experiments": [{**e, "stop": "2026-12-01T00:00:00Z"} for e in CONFIG["experiments"]]}
    state = _state(stopped)
    routed = route(state, "u1", NOW)
    assert routed.state is state and routed.experiment is None and routed.assignments == {} and routed.apply_rules
