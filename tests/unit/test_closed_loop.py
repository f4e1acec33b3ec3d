"""The closed-loop marketplace at the test sizes: served days, the loop's determinism, the cold-start prior's
point-in-time training. Real simulator, real parquet partitions, real DuckDB; the service's policies run in
`make bench-loop` (a day of the daily pipeline takes longer than this file's budget)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.loop import run_loop
from orchestration.loop_home import build_warm_up
from producers.served_day import MissingStock, simulate_served_day
from producers.simulator import simulate
from shoprank.item_priors import ItemPriors, load_priors
from shoprank.raw_contract import partition_path
from shoprank.settings import LoopSettings, Settings, get_settings
from training.cold_start_prior import train_cold_start_prior, training_frame

LOOP_ENV = (
    "SHOPRANK_HOME",
    "SHOPRANK_SERVING__RULES_PATH",
    "SHOPRANK_SERVING__LOG_REQUESTS",
    "SHOPRANK_SERVING__CACHE_REFRESH_SECONDS",
)


@pytest.fixture
def loop_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_loop points the process's settings at its home: put them back afterwards."""
    for key in LOOP_ENV:
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    yield
    get_settings.cache_clear()


def _home(tmp_path: Path, name: str) -> Settings:
    settings = get_settings().model_copy(update={"home": tmp_path / name})
    settings.ensure_dirs()
    return settings


def _warm_up(settings: Settings) -> date:
    simulate(settings, settings.default_run_date)
    return settings.default_run_date


def _last_live(settings: Settings, day: date) -> list[str]:
    stock = pd.read_parquet(partition_path(settings.raw_dir, "inventory", day))
    return sorted(stock["item_id"])[-20:]


def test_the_served_slates_not_the_simulators_become_the_days_impressions(tmp_path: Path) -> None:
    settings = _home(tmp_path, "served")
    day = _warm_up(settings) + timedelta(days=1)
    seen: list[pd.DataFrame] = []

    def server(requests: pd.DataFrame) -> list[list[str]]:
        seen.append(requests)
        chosen = _last_live(settings, day)[::-1]  # the newest items, newest first: not the logging policy's pick
        return [["i999999", *chosen, chosen[0]] for _ in range(len(requests))]  # unknown and repeated ids drop

    summary = simulate_served_day(settings, day, server)
    events = pd.read_parquet(partition_path(settings.raw_dir, "events", day))
    impressions = events[events["event_type"] == "impression"]
    chosen = _last_live(settings, day)[::-1]
    assert summary["events"]["impression"] == len(seen[0]) * len(chosen) == len(impressions)
    assert set(impressions["request_id"]) == set(seen[0]["request_id"])
    for _, slate in impressions.sort_values(["request_id", "position"]).groupby("request_id"):
        assert list(slate["item_id"]) == chosen and list(slate["position"]) == list(range(1, len(chosen) + 1))
    clicked = events[events["event_type"] == "click"]
    assert set(clicked["item_id"]) <= set(chosen) and len(clicked) > 0


def test_a_served_day_needs_the_day_befores_stock(tmp_path: Path) -> None:
    settings = _home(tmp_path, "cold")
    with pytest.raises(MissingStock, match="simulate up to"):
        simulate_served_day(settings, settings.default_run_date + timedelta(days=1), lambda r: [[]] * len(r))


def test_the_loop_is_deterministic_for_a_seed(tmp_path: Path, loop_env: None) -> None:
    first = run_loop("oracle", days=3, home=tmp_path / "a", echo=lambda _: None)
    second = run_loop("oracle", days=3, home=tmp_path / "b", echo=lambda _: None)
    for summary in (first, second):
        summary.pop("wall_seconds")
    assert first == second
    assert first["served_days"] == 3 and first["purchases"] > 0 and first["oos_impressions"] == 0
    day = date.fromisoformat(first["first_day"]) + timedelta(days=2)
    a, b = (pd.read_parquet(partition_path(home / "raw", "events", day)) for home in (tmp_path / "a", tmp_path / "b"))
    pd.testing.assert_frame_equal(a, b)
    written = json.loads((tmp_path / "a" / "loop" / "oracle" / "summary.json").read_text())
    assert written["cumulative_gmv"] == first["cumulative_gmv"]


def test_a_cadence_of_zero_is_kept_not_replaced_by_the_default(tmp_path: Path, loop_env: None) -> None:
    lines: list[str] = []
    summary = run_loop("oracle", days=1, retrain_every=0, home=tmp_path / "fixed", echo=lines.append)
    assert summary["retrain_every_days"] == 0 and "no retraining (--retrain-every 0" in lines[0]
    assert LoopSettings(retrain_every_days=0).retrain_every_days == 0  # settable as SHOPRANK_LOOP__RETRAIN_EVERY_DAYS
    with pytest.raises(ValueError, match="0: never"):
        run_loop("oracle", days=1, retrain_every=-1, home=tmp_path / "bad", echo=lines.append)


def test_a_shared_warm_up_gives_the_run_its_own_warm_up_would(tmp_path: Path, loop_env: None) -> None:
    build_warm_up(tmp_path / "warm", service=False)
    shared = run_loop("oracle", days=2, home=tmp_path / "shared", warm_home=tmp_path / "warm", echo=lambda _: None)
    own = run_loop("oracle", days=2, home=tmp_path / "own", echo=lambda _: None)
    for summary in (shared, own):
        summary.pop("wall_seconds")
    assert shared == own and shared["purchases"] > 0
    assert not (tmp_path / "warm" / "loop").exists()  # the runs wrote into their own homes only
    with pytest.raises(ValueError, match="needs its pipeline"):
        run_loop("rules", days=1, home=tmp_path / "service", warm_home=tmp_path / "warm", echo=lambda _: None)


def test_the_cold_start_prior_never_sees_an_items_own_future(tmp_path: Path) -> None:
    settings = _home(tmp_path, "prior")
    warm = _warm_up(settings)
    prior_day = warm + timedelta(days=1)
    before = training_frame(settings, prior_day)
    train_cold_start_prior(settings, prior_day)
    table_before = load_priors(settings.cold_start_prior_path).table
    # The run's day and the next happen (served by a fixed slate): nothing dated on or after prior_day may count.
    slate = _last_live(settings, warm)  # items listed before the warm-up's end: live on both days

    def fixed(requests: pd.DataFrame) -> list[list[str]]:
        return [slate] * len(requests)

    for n in (1, 2):
        simulate_served_day(settings, warm + timedelta(days=n), fixed)
    after = training_frame(settings, prior_day)
    pd.testing.assert_frame_equal(before, after)
    train_cold_start_prior(settings, prior_day)
    pd.testing.assert_frame_equal(table_before, load_priors(settings.cold_start_prior_path).table)
    # Every example's first days ended before the run's day; items still in them are not examples.
    ends = pd.to_datetime(before["created_ts"], utc=True) + pd.Timedelta(days=settings.loop.prior_first_days)
    assert len(before) > 0 and (ends <= pd.Timestamp(prior_day.isoformat(), tz="UTC")).all()
    later = training_frame(settings, warm + timedelta(days=3))
    assert len(later) > len(before)  # days later, the newer items' first days are over and they join


def test_the_loop_command_names_the_policies(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["loop", "--policy", "nope", "--days", "1"])
    assert result.exit_code == 2
    assert "model-only" in result.output and "oracle" in result.output


def test_the_prior_lookup_gives_known_items_their_row_and_unknown_ones_no_history() -> None:
    table = pd.DataFrame(
        {
            "item_id": ["i000001", "i000002"],
            "prior_ctr": [0.1, 0.2],
            "prior_cvr": [0.3, float("nan")],
            "impressions": [5.0, float("nan")],
            "clicks": [1.0, 2.0],
            "purchases": [0.0, 1.0],
        }
    ).set_index("item_id")
    looked_up = ItemPriors(table).lookup(["i000002", "i999999", "i000001", "i000001"])
    assert looked_up["prior_ctr"][[0, 2, 3]].tolist() == [0.2, 0.1, 0.1] and pd.isna(looked_up["prior_ctr"][1])
    assert pd.isna(looked_up["prior_cvr"][[0, 1]]).all() and looked_up["prior_cvr"][2] == 0.3
    assert looked_up["impressions"].tolist() == [0.0, 0.0, 5.0, 5.0]  # unknown history counts as none
    assert looked_up["purchases"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert len(ItemPriors().lookup([])["clicks"]) == 0


def test_the_daily_prior_step_trains_only_when_the_rules_use_the_prior(tmp_path: Path, loop_env: None) -> None:
    import yaml

    from orchestration import pipeline

    settings = _home(tmp_path, "prior-step")
    day = _warm_up(settings)
    os.environ["SHOPRANK_HOME"] = str(settings.home)
    get_settings.cache_clear()
    neither = yaml.safe_load(settings.rules_file.read_text())
    for section in ("learned_exploration", "seller_floor"):
        neither.setdefault(section, {})["enabled"] = False
    (tmp_path / "rules-neither.yaml").write_text(yaml.safe_dump(neither))
    os.environ["SHOPRANK_SERVING__RULES_PATH"] = str(tmp_path / "rules-neither.yaml")
    get_settings.cache_clear()
    result = pipeline.STEPS["train-cold-start-prior"](day)
    assert "skipped" in result and not settings.cold_start_prior_path.exists()
    for section in ("learned_exploration", "seller_floor"):
        rules = {**neither, section: {**neither[section], "enabled": True}}
        path = tmp_path / f"rules-{section}.yaml"
        path.write_text(yaml.safe_dump(rules))
        os.environ["SHOPRANK_SERVING__RULES_PATH"] = str(path)
        get_settings.cache_clear()
        settings.cold_start_prior_path.unlink(missing_ok=True)
        result = pipeline.STEPS["train-cold-start-prior"](day)
        assert result["run_date"] == day.isoformat() and result["items"] > 0, section
        assert len(load_priors(settings.cold_start_prior_path).table) == result["items"]
