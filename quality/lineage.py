"""Checks that span rows or partitions, aggregated in DuckDB into small frames the GX suites then validate.

A row-level suite sees one partition; these facts need history or grouping, so DuckDB computes them over the
parquet files (or a mart frame) and hands back one row per entity or per user-item pair, never per event:

- catalogue changes: each entity of the run day's partition that an earlier partition already defined, with its
  previous definition beside it (staging keeps the latest row, so a redefinition silently rewrites history);
- the funnel: each user-item pair purchased on the run day, with the impressions and clicks of that pair up to the
  first purchase, in the run day's partition and ``lookback`` earlier ones;
- creation: each item with events on the run day, its first event and its creation time;
- the mart funnel: each user-item pair of ``training_examples`` purchased in the run's partitions, clicks vs
  purchases over all its partitions (a SQL relation the mart gate validates in DuckDB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from shoprank.resources import duckdb_connect
from shoprank.settings import Settings

# Per entity table: its key and the attributes a later partition may not change (a price may, within bounds).
ENTITY_KEYS = {"items": "item_id", "users": "user_id", "sellers": "seller_id"}
IMMUTABLE = {
    "items": ("item_type", "seller_id", "category_id", "created_ts"),
    "users": ("signup_ts",),
    "sellers": ("created_ts",),
}


def _connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """Within the step's memory budget (memory_limit, spilling under the home), UTC."""
    return duckdb_connect(settings)


def _files(paths: Sequence[Path]) -> str:
    """A DuckDB list literal of file paths (read_parquet takes a list)."""
    quoted = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    return f"[{quoted}]"


def catalogue_changes(table: str, today: pd.DataFrame, earlier: Sequence[Path], settings: Settings) -> pd.DataFrame:
    """Entities of ``today`` (the run day's partition) already defined in the ``earlier`` partitions' files.

    One row per redefined entity: its key, the previous partition (``previous_dt``), each immutable attribute
    now and before (``<column>`` / ``previous_<column>``), and for items ``price_ratio`` (new / previous price).
    """
    key, immutable = ENTITY_KEYS[table], IMMUTABLE[table]
    tracked = (*immutable, "price") if table == "items" else immutable
    columns = [key, "previous_dt", *(c for col in immutable for c in (col, f"previous_{col}"))]
    if table == "items":
        columns.append("price_ratio")
    if not earlier or today.empty:
        return today.iloc[0:0].reindex(columns=columns)
    con = _connect(settings)
    con.register("today", today)
    # dt comes from the partition folder's name (hive partitioning), as dbt's sources read it
    read = f"read_parquet({_files(earlier)}, hive_partitioning = true, union_by_name = true)"
    dated = f"select dt, {key}, {', '.join(tracked)} from {read}"
    pairs = ", ".join(f"t.{c}, e.{c} as previous_{c}" for c in immutable)
    ratio = ", t.price / nullif(e.price, 0) as price_ratio" if table == "items" else ""
    frame = con.execute(
        f"""
        with earlier as ({dated}),
        latest as (select * from earlier qualify row_number() over (partition by {key} order by dt desc) = 1)
        select t.{key}, e.dt as previous_dt, {pairs}{ratio}
        from today t join latest e on t.{key} = e.{key}
        order by t.{key}
        """
    ).df()
    con.close()
    return frame


def purchase_funnel(today: Sequence[Path], lookback: Sequence[Path], settings: Settings) -> pd.DataFrame:
    """One row per user-item pair purchased in ``today``'s files: impressions and clicks of the pair up to its
    first purchase, counted in ``today`` and the ``lookback`` files (earlier partitions of events).

    A pair whose first purchase has a click before it has one before every later purchase too, so one row per
    pair is enough.
    """
    history = (
        f"union all select user_id, item_id, event_type, event_ts from read_parquet({_files(lookback)}, "
        "union_by_name = true) where event_type in ('impression', 'click')"
        if lookback
        else ""
    )
    con = _connect(settings)
    frame = con.execute(
        f"""
        with day as (select user_id, item_id, event_type, event_ts from read_parquet({_files(today)})),
        purchases as (
            select user_id, item_id, min(event_ts) as first_purchase_ts, count(*) as purchases
            from day where event_type = 'purchase' group by user_id, item_id
        ),
        steps as (select * from day where event_type in ('impression', 'click') {history})
        select
            p.user_id, p.item_id, p.first_purchase_ts, p.purchases,
            count(s.event_type) filter (where s.event_type = 'impression') as impressions_before,
            count(s.event_type) filter (where s.event_type = 'click') as clicks_before
        from purchases p
        left join steps s
            on s.user_id = p.user_id and s.item_id = p.item_id and s.event_ts <= p.first_purchase_ts
        group by p.user_id, p.item_id, p.first_purchase_ts, p.purchases
        order by p.user_id, p.item_id
        """
    ).df()
    con.close()
    return frame


def item_first_events(today: Sequence[Path], items: Sequence[Path], settings: Settings) -> pd.DataFrame:
    """One row per item with events in ``today``'s files: its first event there and its creation time (the latest
    ``created_ts`` any of the ``items`` files gives it). Items no file defines are left to the known-ids check."""
    con = _connect(settings)
    frame = con.execute(
        f"""
        with firsts as (
            select item_id, min(event_ts) as first_event_ts, count(*) as events
            from read_parquet({_files(today)}) group by item_id
        ),
        created as (
            select item_id, max(created_ts) as created_ts
            from read_parquet({_files(items)}, union_by_name = true) group by item_id
        )
        select f.item_id, f.first_event_ts, c.created_ts, f.events
        from firsts f join created c on f.item_id = c.item_id
        order by f.item_id
        """
    ).df()
    con.close()
    return frame


def user_item_funnel_sql(window: str, history: str) -> str:
    """A relation: per user-item pair with a purchase label in ``window`` (the run's partitions of
    ``training_examples``), its clicks and purchases over ``history`` (all partitions: a click days before counts)."""
    return f"""(
        select user_id, item_id, sum(label_click)::bigint as clicks, sum(label_purchase)::bigint as purchases
        from {history}
        where (user_id, item_id) in (select user_id, item_id from {window} where label_purchase > 0)
        group by user_id, item_id having sum(label_purchase) > 0
    )"""
