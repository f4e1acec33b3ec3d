"""Exposures and outcomes of an experiment: the warehouse's dbt models, or the same SQL over the service's logs.

- exposure: the requests log (``<serving_logs>/requests/``) rows assigned to the experiment (its arm in the JSON
  ``assignments``), between start and stop: dbt's ``experiment_exposures``;
- outcome: the events of the same request ids (impressions logged by the service, clicks and purchases reported
  to POST /events with the request id), in the events log (``<serving_logs>/events/``): dbt's
  ``experiment_outcomes``;
With ``models`` (the schema holding those views, e.g. the attached warehouse's) the analysis reads them; without,
the inline SQL below over the logs (a home whose warehouse has not been built). tests/experiments/
test_exposure_models.py proves the two give the same per-user table.
- pre-period (the CUPED covariates): the user's events in the ``pre_days`` before start, from the raw events and
  the events log.
A user seen in more than one arm (the file changed mid-experiment) is left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from quality.experiments.analysis import OUTCOMES, PRE


@dataclass(frozen=True)
class Exposures:
    users: pd.DataFrame  # one row per user: arm, OUTCOMES, OUTCOMES + PRE
    requests: pd.DataFrame  # interleaved requests: request_id, clicks_a, clicks_b, winner
    users_in_several_arms: int


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("dt=*/*.parquet"))


def _scan(files: list[str]) -> str:
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"


def exposures(
    con: duckdb.DuckDBPyConnection,
    logs_dir: Path,
    raw_events_dir: Path | None,
    experiment: str,
    start: datetime,
    stop: datetime,
    pre_days: int = 7,
    models: str | None = None,
) -> Exposures:
    request_files = _files(logs_dir / "requests")
    event_files = _files(logs_dir / "events")
    empty = pd.DataFrame(columns=["user_id", "arm", *OUTCOMES, *(f"{c}{PRE}" for c in OUTCOMES)])
    if not request_files:
        return Exposures(empty, pd.DataFrame(columns=["request_id", "clicks_a", "clicks_b", "winner"]), 0)
    window = {"experiment": experiment, "start": start, "stop": stop}
    if models:
        con.execute(
            f"""
            create or replace temp table exposed as
            select request_id, user_id, request_ts, interleave_teams, arm from {models}.experiment_exposures
            where experiment = $experiment and request_ts >= $start and request_ts < $stop
            """,
            window,
        )
    else:
        con.execute(
            f"""
            create or replace temp table exposed as
            select request_id, user_id, request_ts, interleave_teams,
                   json_extract_string(assignments, '$."' || $experiment || '"') as arm
            from {_scan(request_files)}
            where assignments is not null and request_ts::timestamptz >= $start and request_ts::timestamptz < $stop
              and json_extract_string(assignments, '$."' || $experiment || '"') is not null
            """,
            window,
        )
    events = _scan(event_files) if event_files else "(select null::varchar as request_id limit 0)"
    con.execute(f"create or replace temp view logged_events as select * from {events}")
    if models:
        con.execute(
            f"""
            create or replace temp view outcome as
            select * from {models}.experiment_outcomes where request_id in (select request_id from exposed)
            """
        )
    else:
        con.execute(
            """
        create or replace temp view outcome as
        select request_id,
               count(*) filter (where event_type = 'impression') as impressions,
               count(*) filter (where event_type = 'click') as clicks,
               count(*) filter (where event_type = 'purchase') as purchases,
               coalesce(sum(price * coalesce(quantity, 1)) filter (where event_type = 'purchase'), 0) as gmv
        from logged_events where request_id in (select request_id from exposed)
        group by request_id
        """
        )
    per_user = con.execute(
        """
        with per_request as (
            select x.user_id, x.arm, coalesce(o.impressions, 0) as impressions, coalesce(o.clicks, 0) as clicks,
                   coalesce(o.purchases, 0) as purchases, coalesce(o.gmv, 0) as gmv
            from exposed x left join outcome o using (request_id)
        )
        select user_id, min(arm) as arm, count(distinct arm) as n_arms, count(*) as requests,
               sum(impressions) as impressions, sum(clicks) as clicks, sum(purchases) as purchases, sum(gmv) as gmv
        from per_request group by user_id
        """
    ).df()
    several = int((per_user["n_arms"] > 1).sum())
    per_user = per_user[per_user["n_arms"] == 1].drop(columns="n_arms")
    pre = _pre_period(con, [*event_files, *(_files(raw_events_dir) if raw_events_dir else [])], start, pre_days)
    users = per_user.merge(pre, on="user_id", how="left")
    users[[f"{c}{PRE}" for c in OUTCOMES]] = users[[f"{c}{PRE}" for c in OUTCOMES]].astype("float64").fillna(0)
    requests = con.execute(
        """
        with clicks as (
            select x.request_id,
                   json_extract_string(x.interleave_teams, '$."' || e.item_id || '"') as team
            from exposed x join logged_events e using (request_id)
            where x.interleave_teams is not null and e.event_type = 'click'
        )
        select x.request_id,
               count(*) filter (where c.team = 'A') as clicks_a, count(*) filter (where c.team = 'B') as clicks_b
        from exposed x left join clicks c using (request_id)
        where x.interleave_teams is not null
        group by x.request_id
        """
    ).df()
    requests["winner"] = [
        "A" if a > b else "B" if b > a else None
        for a, b in zip(requests["clicks_a"], requests["clicks_b"], strict=True)
    ]
    return Exposures(users.reset_index(drop=True), requests, several)


def _pre_period(con: duckdb.DuckDBPyConnection, files: list[str], start: datetime, pre_days: int) -> pd.DataFrame:
    columns = ["user_id", *(f"{c}{PRE}" for c in OUTCOMES)]
    if not files or pre_days <= 0:
        return pd.DataFrame(columns=columns)
    return con.execute(
        f"""
        select user_id,
               count(distinct request_id) as requests{PRE},
               count(*) filter (where event_type = 'impression') as impressions{PRE},
               count(*) filter (where event_type = 'click') as clicks{PRE},
               count(*) filter (where event_type = 'purchase') as purchases{PRE},
               coalesce(sum(price * coalesce(quantity, 1)) filter (where event_type = 'purchase'), 0) as gmv{PRE}
        from {_scan(files)}
        where event_ts::timestamptz >= $from and event_ts::timestamptz < $start
        group by user_id
        """,
        {"from": start - timedelta(days=pre_days), "start": start},
    ).df()[columns]


def guardrails(
    con: duckdb.DuckDBPyConnection, logs_dir: Path, experiment: str, start: datetime, stop: datetime
) -> pd.DataFrame:
    """Per arm: requests, p50/p99 latency (ms) and the share of degraded answers, from the requests log."""
    files = _files(logs_dir / "requests")
    if not files:
        return pd.DataFrame(columns=["arm", "requests", "latency_p50_ms", "latency_p99_ms", "degraded_share"])
    return con.execute(
        f"""
        select arm, count(*) as requests, quantile_cont(latency_ms, 0.5) as latency_p50_ms,
               quantile_cont(latency_ms, 0.99) as latency_p99_ms, avg(degraded::int) as degraded_share
        from (
            select json_extract_string(assignments, '$."' || $experiment || '"') as arm, latency_ms, degraded
            from {_scan(files)}
            where assignments is not null and request_ts::timestamptz >= $start and request_ts::timestamptz < $stop
        )
        where arm is not null
        group by arm order by arm
        """,
        {"experiment": experiment, "start": start, "stop": stop},
    ).df()
