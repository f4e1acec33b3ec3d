"""The online decision rule on hand-made analyses, promoting through the gate into a real (temporary) model store:
a clear winner's model becomes champion; a sample ratio mismatch or a broken guardrail is refused with that reason
and the champion stays. Every decision is recorded with its numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from orchestration.experiments import decide, decide_finished, report_dir
from quality.experiments.analysis import OUTCOMES, PRE, analyse
from quality.experiments.decision import SAMPLE_RATIO_MISMATCH
from quality.experiments.decision import decide as apply_rule
from quality.experiments.report import ExperimentReport
from shoprank.settings import Settings, apply_runtime_env, get_settings
from tests.model.model_store import bentoml_home
from tests.model.test_gate import _candidate, _ranker, _requests
from training import gate, registry

RUN_DATE = date(2026, 12, 14)
SHARES = {"control": 0.5, "v3": 0.5}


def _users(rng: np.random.Generator, arm: str, n: int, gmv_lift: float) -> pd.DataFrame:
    """Per-user totals: a pre-period that predicts the experiment period (CUPED has something to use)."""
    propensity = rng.gamma(2.0, 1.0, n)
    frame = pd.DataFrame({"user_id": [f"{arm}-{i}" for i in range(n)], "arm": arm})
    for suffix, lift in (("", gmv_lift), (PRE, 1.0)):
        requests = rng.poisson(3 * propensity) + 1
        impressions = requests * 10
        clicks = rng.binomial(impressions, 0.08)
        purchases = rng.binomial(clicks, 0.2)
        frame[f"requests{suffix}"] = requests
        frame[f"impressions{suffix}"] = impressions
        frame[f"clicks{suffix}"] = clicks
        frame[f"purchases{suffix}"] = purchases
        frame[f"gmv{suffix}"] = purchases * rng.gamma(4.0, 10.0, n) * lift
    return frame[["user_id", "arm", *OUTCOMES, *(f"{c}{PRE}" for c in OUTCOMES)]]


def _report(n_control: int, n_treatment: int, gmv_lift: float, treatment_p99_ms: float = 12.0) -> dict:
    rng = np.random.default_rng(7)
    users = pd.concat([_users(rng, "control", n_control, 1.0), _users(rng, "v3", n_treatment, gmv_lift)])
    guardrails = pd.DataFrame(
        {
            "arm": ["control", "v3"],
            "requests": [n_control * 4, n_treatment * 4],
            "latency_p50_ms": [5.0, 5.5],
            "latency_p99_ms": [11.0, treatment_p99_ms],
            "degraded_share": [0.0, 0.0],
        }
    )
    analysis = analyse(users, "v3-online", SHARES)
    return ExperimentReport("v3-online", "2026-12-01 to 2026-12-14", analysis, None, guardrails, 0).to_dict()


CLEAR_WINNER = {"n_control": 3000, "n_treatment": 3000, "gmv_lift": 1.3}
CASES = {
    "winner": (CLEAR_WINNER, None),
    "srm": ({**CLEAR_WINNER, "n_treatment": 2600}, "sample ratio mismatch"),
    "latency": ({**CLEAR_WINNER, "treatment_p99_ms": 40.0}, "v3: p99 latency 40.0 ms vs control 11.0 ms"),
}


def test_the_rule_on_hand_made_analyses() -> None:
    rule = Settings().training.gate.online
    winner = apply_rule(_report(**CLEAR_WINNER), rule)
    assert winner.ship and winner.arm == "v3", winner.reasons
    assert winner.numbers["v3"]["gmv_per_user"]["rel_effect"] > 0.2
    srm = apply_rule(_report(**CASES["srm"][0]), rule)
    assert not srm.ship and srm.refusal == SAMPLE_RATIO_MISMATCH
    flat = apply_rule(_report(3000, 3000, 1.0), rule)  # no GMV difference: keep the control
    assert not flat.ship and "primary_not_better" in flat.failed["v3"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[dict]:
    """A model store with a champion ('first') and the arm's model ('better'), and the experiment's file."""
    settings = Settings(home=tmp_path / "home")
    rng = np.random.default_rng(3)
    train, holdout = _requests(rng, 200, "2026-01-06"), _requests(rng, 100, "2026-01-07")
    with pytest.MonkeyPatch.context() as mp, bentoml_home(settings.model_store_dir):
        mp.delenv("SHOPRANK_MODEL_TAG", raising=False)
        apply_runtime_env(settings)
        home = settings.home_dir
        first = registry.register_candidate(
            settings, _candidate(home, "first", _ranker(train, train["label_click"]), holdout)
        )
        better = registry.register_candidate(
            settings, _candidate(home, "better", _ranker(train, train["relevance"]), holdout)
        )
        gate.promote(settings, first["tag"], force=True, label="setup")
        experiments = {
            "version": "t1",
            "experiments": [
                {
                    "name": "v3-online",
                    "layer": "model",
                    "salt": "v3-online-1",
                    "start": "2026-12-01T00:00:00Z",
                    "stop": "2026-12-15T00:00:00Z",
                    "arms": [
                        {"name": "control", "share": 0.5},
                        {"name": "v3", "share": 0.5, "model_tag": better["tag"]},
                    ],
                }
            ],
        }
        path = tmp_path / "experiments.yaml"
        path.write_text(yaml.safe_dump(experiments))
        settings.serving.experiments_path = path
        yield {"settings": settings, "champion": first["tag"], "arm_model": better["tag"]}
    get_settings.cache_clear()
    apply_runtime_env(get_settings())


def _write_report(settings: Settings, report: dict) -> None:
    folder = report_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{RUN_DATE}.json").write_text(
        json.dumps({"run_date": str(RUN_DATE), "experiments": [report]}, default=str)
    )


@pytest.mark.parametrize("case", ["winner", "srm", "latency"])
def test_only_a_clear_winner_changes_the_champion_and_every_decision_is_recorded(store: dict, case: str) -> None:
    settings = store["settings"]
    params, refusal_reason = CASES[case]
    _write_report(settings, _report(**params))
    record = decide(settings, "v3-online", RUN_DATE)
    saved = json.loads(Path(record["decision_path"]).read_text())
    assert saved["reasons"] == record["reasons"] and saved["numbers"]["users"] == {
        "control": 3000,
        "v3": params["n_treatment"],
    }
    events = registry.read_registry(settings)["events"]
    if refusal_reason is None:
        assert record["ship"] and record["promoted"] and record["model_tag"] == store["arm_model"]
        assert registry.champion_tag(settings) == store["arm_model"]
        assert events[-1]["action"] == "promote" and events[-1]["tag"] == store["arm_model"]
        gate_record = json.loads(Path(record["gate"][0]["decision_path"]).read_text())
        assert gate_record["promoted"] and gate_record["metrics"]["v3.gmv_per_user.rel_effect"] > 0.2
    else:
        assert not record["ship"] and not record["promoted"]
        assert any(refusal_reason in reason for reason in record["reasons"]), record["reasons"]
        assert registry.champion_tag(settings) == store["champion"]
        assert events[-1]["action"] == "refuse" and events[-1]["tag"] == store["arm_model"]


def test_the_dag_task_decides_a_stopped_experiment_once(store: dict) -> None:
    settings = store["settings"]
    _write_report(settings, _report(**CLEAR_WINNER))
    assert decide_finished(settings, date(2026, 12, 10))["decided"] == {}  # still running on that day
    first = decide_finished(settings, RUN_DATE)["decided"]
    assert first["v3-online"]["promoted"] is True
    assert decide_finished(settings, RUN_DATE)["decided"] == {}  # already decided: not again
    assert registry.champion_tag(settings) == store["arm_model"]


def test_a_champion_changed_during_the_experiment_refuses(store: dict) -> None:
    settings = store["settings"]
    # The experiment started before the fixture's promotion of the champion: its control arm served another model.
    path = settings.experiments_file
    declared = yaml.safe_load(path.read_text())
    declared["experiments"][0]["start"] = "2026-01-01T00:00:00Z"
    path.write_text(yaml.safe_dump(declared))
    promoted_at = datetime.fromisoformat(registry.read_registry(settings)["events"][-1]["at"])
    assert promoted_at > datetime(2026, 1, 1, tzinfo=UTC)
    _write_report(settings, _report(**CLEAR_WINNER))
    record = decide(settings, "v3-online", RUN_DATE)
    assert record["ship"] and not record["promoted"]
    assert record["gate"][0]["refusal"] == gate.CHAMPION_CHANGED
    assert registry.champion_tag(settings) == store["champion"]
