"""benchmarks/bench_scale.py: the next day's build-warehouse as a share of the first day's (issue 13's target)."""

from __future__ import annotations

from benchmarks.bench_scale import Measure, next_day_share, table


def _results(next_wall: float, next_ok: bool = True) -> dict[str, dict[str, Measure]]:
    return {
        "day": {"build-warehouse": Measure(40.0, 80.0, 4000.0, True)},
        "next day": {"build-warehouse": Measure(next_wall, 20.0, 1200.0, next_ok)},
    }


def test_the_share_is_the_next_days_wall_and_cpu_over_the_first_days() -> None:
    assert next_day_share(_results(12.0)) == (0.3, 0.25)


def test_no_share_without_both_days_finished() -> None:
    assert next_day_share(_results(12.0, next_ok=False)) is None
    assert next_day_share({"day": _results(12.0)["day"]}) is None


def test_the_table_prints_the_share(capsys) -> None:  # noqa: ANN001
    table(10_000_000, _results(12.0), 6.0)
    assert "next day's build-warehouse: 0.30 of the first day's wall, 0.25 of its CPU" in capsys.readouterr().out
