"""Bucketing, the experiments file and team-draft interleaving: pure functions, no service."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from serving.experiments.assignment import arm_for, assign, bucket
from serving.experiments.config import ExperimentConfigError, ExperimentsConfig, load_experiments
from serving.experiments.interleaving import TEAM_A, TEAM_B, credit, preference, team_draft

USERS = [f"u{i:06d}" for i in range(20_000)]
NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _config(*experiments: dict) -> ExperimentsConfig:
    return ExperimentsConfig.model_validate({"version": "t", "experiments": list(experiments)})


def _experiment(name: str, layer: str, salt: str, shares: tuple[float, ...] = (0.5, 0.5), **extra) -> dict:
    arms = [{"name": f"arm{i}", "share": share} for i, share in enumerate(shares)]
    return {"name": name, "layer": layer, "salt": salt, "arms": arms, **extra}


def test_bucket_is_sha256_of_salt_and_user_and_stable() -> None:
    # the value is fixed by the definition (sha256("s1:u000001")[:8] / 2**64): any process, worker or restart
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"s1:u000001").digest()[:8], "big") / 2**64
    assert bucket("u000001", "s1") == expected
    assert bucket("u000001", "s1") == bucket("u000001", "s1") != bucket("u000001", "s2")
    assert min(bucket(u, "s1") for u in USERS[:100]) >= 0 and max(bucket(u, "s1") for u in USERS[:100]) < 1


def test_arms_get_their_shares_uniformly() -> None:
    config = _config(_experiment("e", "l", "salt-1", (0.2, 0.3, 0.5)))
    arms = [arm_for(config.experiments[0], u).name for u in USERS]
    shares = {name: arms.count(name) / len(USERS) for name in ("arm0", "arm1", "arm2")}
    # binomial sd at n=20k is <= 0.0036: 0.015 is > 4 sd
    assert shares == pytest.approx({"arm0": 0.2, "arm1": 0.3, "arm2": 0.5}, abs=0.015)
    deciles = np.histogram([bucket(u, "salt-1") for u in USERS], bins=10, range=(0, 1))[0] / len(USERS)
    assert np.allclose(deciles, 0.1, atol=0.01)


def test_layers_are_independent() -> None:
    config = _config(_experiment("a", "model", "salt-a"), _experiment("b", "rules", "salt-b"))
    table = np.zeros((2, 2))
    for user in USERS:
        first, second = assign(config, user, NOW)
        table[int(first.arm.name[-1]), int(second.arm.name[-1])] += 1
    assert chi2_contingency(table).pvalue > 0.01
    assert table.min() / len(USERS) == pytest.approx(0.25, abs=0.015)


def test_only_running_experiments_assign() -> None:
    config = _config(
        _experiment("past", "l", "s1", start="2026-11-01T00:00:00Z", stop="2026-12-01T00:00:00Z"),
        _experiment("now", "l", "s2", start="2026-12-01T00:00:00Z"),
    )
    assert [a.experiment for a in assign(config, "u1", NOW)] == ["now"]


@pytest.mark.parametrize(
    ("experiment", "field"),
    [
        (_experiment("e", "l", "s", (0.5, 0.4)), "experiments.0.arms"),
        ({**_experiment("e", "l", "s"), "colour": "red"}, "experiments.0.colour"),
        (_experiment("e", "l", "s", (0.5, 0.5, 0.0)), "experiments.0.arms.2.share"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, experiment: dict, field: str) -> None:
    import yaml  # type: ignore[import-untyped]

    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump({"version": "t", "experiments": [experiment]}))
    with pytest.raises(ExperimentConfigError, match=field.replace(".", r"\.")):
        load_experiments(path)


def test_two_experiments_of_a_layer_at_once_are_refused() -> None:
    with pytest.raises(ValueError, match="share layer l"):
        _config(_experiment("a", "l", "s1"), _experiment("b", "l", "s2"))


def test_the_repository_file_is_valid() -> None:
    load_experiments(Path(__file__).parents[2] / "serving" / "experiments.yaml")


def test_team_draft_keeps_both_rankers_top_items_and_their_teams() -> None:
    a, b = ["a1", "a2", "a3", "x", "a4"], ["b1", "x", "b2", "b3", "b4"]
    for seed in range(50):
        merged = team_draft(a, b, 6, seed)
        assert len(merged.items) == len(set(merged.items)) == 6
        # each team picks once per round: after every even position the teams are level
        assert merged.teams.count(TEAM_A) == merged.teams.count(TEAM_B) == 3
        # every item comes from its team's list, in that list's order
        for team, ranking in ((TEAM_A, a), (TEAM_B, b)):
            mine = [i for i, t in zip(merged.items, merged.teams, strict=True) if t == team]
            assert mine == sorted(mine, key=ranking.index)
    assert team_draft(a, b, 6, 7) == team_draft(a, b, 6, 7)
    # both coins occur: A first in some requests, B first in others
    assert {team_draft(a, b, 2, s).teams[0] for s in range(20)} == {TEAM_A, TEAM_B}


def test_team_draft_with_a_short_list_fills_from_the_other() -> None:
    merged = team_draft(["a1"], ["b1", "b2", "b3"], 4, 0)
    assert sorted(merged.items) == ["a1", "b1", "b2", "b3"]
    assert merged.team_of()["a1"] == TEAM_A and merged.teams.count(TEAM_B) == 3


def test_clicks_are_credited_to_the_contributing_ranker() -> None:
    teams = {"x": TEAM_A, "y": TEAM_B, "z": TEAM_B}
    assert credit(teams, ["y", "z", "unknown"]) == (0, 2)
    assert preference(teams, ["x", "y", "z"]) == TEAM_B
    assert preference(teams, ["x", "y"]) is None
    assert preference(teams, ["x"]) == TEAM_A
