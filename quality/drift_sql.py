"""The drift gate's counting in DuckDB: PSI per model feature from binned counts, never a frame of feature rows.

The rows are those of quality.drift.feature_rows (the pandas reference, which the tests hold this against): each
impression of the reference and current days joined to the user and item snapshots of its day, with the derived
features of shoprank.ranking_features.add_derived_features written in SQL. Per feature, the bin edges are the
reference's order statistics at ranks ceil(n * i / bins) - 1 (quality.drift.reference_edges: DuckDB's quantile_disc
asked at each rank's midpoint, so float rounding never picks a neighbour), and one query counts every feature's
bins in both windows. What comes back is a few numbers per feature; quality.drift turns them into PSI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from quality.mart_sql import mart_source
from quality.sql_expectations import quote
from shoprank.ranking_features import DERIVED_FEATURES, ITEM_FEATURES, USER_FEATURES, category_share_columns

if TYPE_CHECKING:
    import duckdb

TABLE = "drift_rows"


@dataclass
class FeatureCounts:
    """One feature's bin counts (bins in order, then missing) and mean, in the reference and current windows."""

    edges: np.ndarray
    reference: np.ndarray
    current: np.ndarray
    reference_mean: float | None
    current_mean: float | None


def _ts(day: date) -> str:
    return f"cast('{datetime(day.year, day.month, day.day).isoformat()}+00:00' as timestamptz)"


def _double(value: float) -> str:
    return f"cast('{float(value)!r}' as double)"


def example_days(con: duckdb.DuckDBPyConnection, marts: Path, run_date: date) -> list[date]:
    """Days (UTC) with impressions in ``training_examples`` up to the run's day."""
    source = mart_source(marts, "training_examples")
    rows = con.execute(
        f"select distinct cast(event_ts as date) from {source} where event_ts < {_ts(run_date + timedelta(days=1))}"
    ).fetchall()
    return sorted(row[0] for row in rows)


def feature_expressions(n_categories: int) -> dict[str, str]:
    """Each model feature (shoprank.ranking_features.model_feature_columns) as a SQL expression over the joined
    user (``u``) and item (``i``) snapshots, as a double with NaN as NULL (pandas counts NaN as missing)."""
    derived = {
        # the user's click share of the item's category; 0 without a user row, a share or a known category
        "user_category_affinity": "coalesce(case cast(i.item_category_id as bigint) "
        + " ".join(f"when {c} then u.{quote(name)}" for c, name in enumerate(category_share_columns(n_categories)))
        + " end, 0)",
        "price_to_user_avg": "i.item_price / "
        "case when u.user_avg_click_price_30d > 0 then u.user_avg_click_price_30d end",
    }
    missing = [name for name in DERIVED_FEATURES if name not in derived]
    if missing:
        raise NotImplementedError(f"drift: no SQL form for derived feature(s) {missing} (quality/drift_sql.py)")
    stored = {name: f"u.{quote(name)}" for name in USER_FEATURES} | {name: f"i.{quote(name)}" for name in ITEM_FEATURES}
    expressions = stored | {name: derived[name] for name in DERIVED_FEATURES}
    return {
        name: f"(case when isnan(cast({sql} as double)) then null else cast({sql} as double) end)"
        for name, sql in expressions.items()
    }


def create_feature_rows(
    con: duckdb.DuckDBPyConnection,
    marts: Path,
    reference_days: list[date],
    run_date: date,
    n_categories: int,
    features: list[str],
) -> None:
    """Temp table ``drift_rows``: ``period`` (reference / current) and one double column per feature, one row per
    impression of those days, features as of the start of its day."""
    days = sorted({*reference_days, run_date})
    first, end = _ts(days[0]), _ts(run_date + timedelta(days=1))
    within = f"feature_ts >= {first} and feature_ts < {end}"
    expressions = feature_expressions(n_categories)
    listed = ", ".join(f"date '{d}'" for d in days)
    columns = ", ".join(f"{expressions[f]} as {quote(f)}" for f in features)
    con.execute(
        f"""
        create or replace temp table {TABLE} as
        with examples as (
            select user_id, item_id, date_trunc('day', event_ts) as feature_ts
            from {mart_source(marts, "training_examples")}
            where event_ts >= {first} and event_ts < {end} and cast(event_ts as date) in ({listed})
        ),
        users as (select * from {mart_source(marts, "user_features")} where {within}),
        items as (select * from {mart_source(marts, "item_features")} where {within})
        select
            case when e.feature_ts = {_ts(run_date)} then 'current' else 'reference' end as period,
            {columns}
        from examples e
        left join users u on u.user_id = e.user_id and u.feature_ts = e.feature_ts
        left join items i on i.item_id = e.item_id and i.feature_ts = e.feature_ts
        """
    )


def _rank_quantiles(n: int, bins: int) -> list[float]:
    """quantile_disc arguments picking the order statistics at ranks ceil(n * i / bins) - 1, i = 0..bins: each
    rank's midpoint (rank + 0.5) / n, which DuckDB's index ceil(n * q) - 1 maps back to the rank exactly."""
    ranks = [max(0, -(-n * i // bins) - 1) for i in range(bins + 1)]
    return [(r + 0.5) / n for r in ranks]


def count_bins(
    con: duckdb.DuckDBPyConnection, features: list[str], bins: int
) -> tuple[dict[str, FeatureCounts], dict[str, int]]:
    """Per feature: edges, bin counts and means of both windows; and the rows of each window."""
    table = TABLE
    stats = con.execute(
        f"select period, count(*), {', '.join(f'count({quote(f)}), avg({quote(f)})' for f in features)} "
        f"from {table} group by period"
    ).fetchall()
    by_period = {row[0]: row for row in stats}
    rows = {period: int(by_period[period][1]) if period in by_period else 0 for period in ("reference", "current")}
    present = {
        f: int(by_period["reference"][2 + 2 * k]) if "reference" in by_period else 0 for k, f in enumerate(features)
    }

    quantiled = [f for f in features if present[f]]
    edges: dict[str, np.ndarray] = {f: np.array([]) for f in features}
    if quantiled:
        picks = ", ".join(
            f"quantile_disc({quote(f)}, [{', '.join(_double(q) for q in _rank_quantiles(present[f], bins))}])"
            for f in quantiled
        )
        (values,) = con.execute(f"select {picks} from {table} where period = 'reference'").fetchall()
        for f, picked in zip(quantiled, values, strict=True):
            edges[f] = np.unique(np.asarray(picked, dtype=float))[1:-1]

    def bin_of(f: str) -> str:
        steps = " + ".join(f"({quote(f)} > {_double(e)})::int" for e in edges[f]) or "0"
        return f"case when {quote(f)} is null then -1 else {steps} end as {quote(f)}"

    counted = con.execute(
        f"""
        select period, feature, bin, count(*) from (
            unpivot (select period, {", ".join(bin_of(f) for f in features)} from {table})
            on columns(* exclude (period)) into name feature value bin
        ) group by all
        """
    ).fetchall()
    counts = {(p, f): np.zeros(len(edges[f]) + 2) for f in features for p in ("reference", "current")}
    for period, feature, bin_index, n in counted:
        counts[(period, feature)][bin_index if bin_index >= 0 else -1] += n
    result = {}
    for k, f in enumerate(features):
        means = [by_period[p][3 + 2 * k] if p in by_period else None for p in ("reference", "current")]
        result[f] = FeatureCounts(
            edges[f],
            counts[("reference", f)],
            counts[("current", f)],
            None if means[0] is None else float(means[0]),
            None if means[1] is None else float(means[1]),
        )
    return result, rows
