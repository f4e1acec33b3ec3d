"""The point-in-time training set, assembled in DuckDB over the published marts and written in request chunks.

The same rows and columns as Feast's historical retrieval (training.dataset.build_training_frame), without ever
holding the whole set in memory: DuckDB joins ``training_examples`` to each feature view of the ranker version
(views, join keys, TTLs and columns from shoprank/feature_contract.py) with Feast's point-in-time rule, spilling to
disk under its memory limit, and writes the result partitioned into chunks of whole requests; each chunk then gets
the derived and on-demand columns from the same pandas functions serving and the Feast path use.

Feast's rule, per example and view: the view's newest row with the example's join keys and
``feature_ts <= event_ts`` and ``feature_ts + ttl >= event_ts`` (else every feature of the view is missing). The
marts are daily snapshots stamped at 00:00 UTC, so that newest row is the snapshot of the impression's day start.
An ASOF join finds the newest row at or before ``event_ts``; when it is older than the TTL, so is every other one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from datetime import date
from pathlib import Path

import pandas as pd

from shoprank import feature_contract as contract
from shoprank.mart_files import mart_exists, require_mart_files, sql_files
from shoprank.ranking_features import QUERY_FEATURES, add_derived_features, request_time_features
from shoprank.resources import duckdb_connect, within_budget
from shoprank.settings import Settings
from training.budget import chunk_rows
from training.chunks import Chunk, ChunkedSet, chunk_schema, write_chunk
from training.relevance_feature import QUERY_COLUMN, TITLE_COLUMN, add_relevance, reads_relevance
from training.session_dataset import add_session_features, request_snapshots, uses_session_features

log = logging.getLogger(__name__)

# Columns of each example row, as the Feast path's entity frame names them (event_ts -> event_timestamp).
EXAMPLE_SELECT = (
    "impression_id, request_id, user_id, item_id, event_ts AS event_timestamp, relevance, label_click, "
    "label_purchase, dt"
)
# Join keys that are not the example's own (user_id, item_id), and the item_features column each is read from:
# an item's seller and category are fixed, so its first snapshot gives them.
ITEM_KEYS = {"seller_id": "item_seller_id", contract.CATEGORY_KEY: "item_category_id"}
# The new-seller evaluation slice's flag, joined on the row's day when the service does not bring it.
SLICE_FLAG = "seller_is_new"


def _path(directory: Path, name: str) -> str:
    """The mart's files as read_parquet's argument (a list literal: its file, or its day files)."""
    files = require_mart_files(directory, name, hint="publish the marts (the build-warehouse and publish steps)")
    return sql_files(files)


def service_joins(feature_service: str, n_categories: int) -> tuple[list[contract.View], list[str], bool]:
    """The mart views the ranker version reads, the extra join keys they need, and whether it reads the query
    features (all from the feature contract). Push views (the session) have no mart: training replays them."""
    declared = contract.views(n_categories)
    stored = [
        declared[name]
        for name in contract.service_views(feature_service)
        if name in declared and declared[name].source == "mart"
    ]
    keys = sorted({key for view in stored for key in view.join_keys} & set(ITEM_KEYS))
    reads_query = "query" in contract.ranker(feature_service).columns
    return stored, keys, reads_query


def _view_join(view: contract.View, alias: str, marts: Path) -> tuple[str, list[str]]:
    """The ASOF join of one view and its feature columns, missing beyond the view's TTL (Feast's rule)."""
    keys = ", ".join(view.join_keys)
    features = ", ".join(f'"{name}"' for name in view.feature_names)
    source = f"(SELECT {keys}, feature_ts, {features} FROM read_parquet({_path(marts, view.mart)}))"
    on = " AND ".join(f"e.{key} = {alias}.{key}" for key in view.join_keys)
    join = f"ASOF LEFT JOIN {source} {alias} ON {on} AND e.event_timestamp >= {alias}.feature_ts"
    fresh = f"{alias}.feature_ts + INTERVAL {int(view.ttl_days)} DAY >= e.event_timestamp"
    columns = [f'CASE WHEN {fresh} THEN {alias}."{name}" END AS "{name}"' for name in view.feature_names]
    return join, columns


def examples_sql(settings: Settings, run_date: date) -> str:
    """The SELECT of the impressions up to and including run_date, as the training_examples mart exported them."""
    path = _path(settings.marts_export_dir, "training_examples")
    return f"SELECT {EXAMPLE_SELECT} FROM read_parquet({path}) WHERE dt <= DATE '{run_date.isoformat()}'"


def training_set_sql(settings: Settings, run_date: date, feature_service: str) -> str:
    """The SELECT of every training row (examples up to run_date, their keys, features and slice flag)."""
    marts = settings.marts_export_dir
    stored, keys, reads_query = service_joins(feature_service, settings.simulator.categories)
    needs_seller_flag = all(SLICE_FLAG not in v.feature_names for v in stored) and mart_exists(marts, "seller_features")
    item_keys = sorted({*keys, "seller_id"} if needs_seller_flag else keys)
    examples = f"({examples_sql(settings, run_date)})"
    if item_keys:
        picked = ", ".join(f"arg_min({ITEM_KEYS[key]}, feature_ts) AS {key}" for key in item_keys)
        catalogue = f"(SELECT item_id, {picked} FROM read_parquet({_path(marts, 'item_features')}) GROUP BY item_id)"
        with_keys = ", ".join(f"k.{key}" for key in item_keys)
        examples = f"(SELECT x.*, {with_keys} FROM {examples} x LEFT JOIN {catalogue} k USING (item_id))"
    joins, columns = [], []
    for n, view in enumerate(stored):
        join, view_columns = _view_join(view, f"v{n}", marts)
        joins.append(join)
        columns += view_columns
    relevance = reads_relevance(feature_service)
    if reads_query or relevance:
        matches = ", ".join([*QUERY_FEATURES, "query", "item_title"])
        source = f"(SELECT impression_id, {matches} FROM read_parquet({_path(marts, 'query_item_match')}))"
        joins.append(f"LEFT JOIN {source} q ON q.impression_id = e.impression_id")
        columns += [f"q.{name}" for name in QUERY_FEATURES] if reads_query else []
        columns += [f"q.query AS {QUERY_COLUMN}", f"q.item_title AS {TITLE_COLUMN}"] if relevance else []
    if needs_seller_flag:
        source = f"(SELECT seller_id, dt, {SLICE_FLAG} FROM read_parquet({_path(marts, 'seller_features')}))"
        joins.append(f"LEFT JOIN {source} s ON s.seller_id = e.seller_id AND s.dt = e.dt")
        columns.append(f"s.{SLICE_FLAG}")
    kept = [c for c in item_keys if c in keys]  # the seller_id fetched only for the flag is dropped, as before
    head = ["e.impression_id", "e.request_id", "e.user_id", "e.item_id", "e.event_timestamp", "e.relevance"]
    head += ["e.label_click", "e.label_purchase", "e.dt", *(f"e.{key}" for key in kept)]
    return f"SELECT {', '.join(head + columns)} FROM {examples} e {' '.join(joins)}"


def finish_chunk(
    settings: Settings, frame: pd.DataFrame, feature_service: str, snapshots: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A chunk as the Feast path leaves each row: on-demand, derived and session columns, ordered by request.

    ``snapshots``: the session rows of the chunk's day (replayed once per day by the caller), else replayed here."""
    if "user_item_match" in contract.service_views(feature_service):
        on_demand = request_time_features(frame)
        frame = frame.assign(**{name: on_demand[name] for name in on_demand.columns})
    frame = add_derived_features(frame, settings.simulator.categories)
    frame = add_session_features(settings, frame, feature_service, snapshots)
    if reads_relevance(feature_service):  # scored per day with the version trained on earlier labels
        frame = add_relevance(settings, frame)
    return frame.sort_values(["request_id", "impression_id"], kind="mergesort").reset_index(drop=True)


def build_chunked_training_set(
    settings: Settings, run_date: date, feature_service: str, out: Path, rows_per_chunk: int | None = None
) -> ChunkedSet:
    """Write the point-in-time training set under ``out`` as chunks of whole requests (one day each); the chunk
    size derives from the memory budget unless ``rows_per_chunk`` is given."""
    import pyarrow.parquet as pq

    n_categories = settings.simulator.categories
    if rows_per_chunk is None:
        n_columns = len(contract.feature_columns_for(feature_service, n_categories)) + n_categories + 20
        rows_per_chunk = chunk_rows(settings, n_columns)
    shutil.rmtree(out, ignore_errors=True)
    staging = out / "staging"
    staging.mkdir(parents=True)
    con = duckdb_connect(settings)
    with within_budget(settings, "assembling the training set in DuckDB"), contextlib.closing(con):
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"CREATE TEMP VIEW training_rows AS {training_set_sql(settings, run_date, feature_service)}")
        # Each request goes whole into one part of its day; parts fill up to rows_per_chunk rows, in request order.
        con.execute(
            "CREATE TEMP TABLE request_parts AS SELECT request_id, dt, "
            f"(sum(n) OVER (PARTITION BY dt ORDER BY request_id ROWS UNBOUNDED PRECEDING) - n) // {rows_per_chunk} "
            f"AS _part FROM (SELECT request_id, dt, count(*) AS n FROM ({examples_sql(settings, run_date)}) "
            "GROUP BY request_id, dt)"
        )
        if not con.execute("SELECT count(*) FROM request_parts").fetchone()[0]:  # type: ignore[index]
            raise ValueError(f"training_examples has no rows on or before {run_date}")
        con.execute(
            "COPY (SELECT r.*, p._part, r.dt AS _day FROM training_rows r JOIN request_parts p USING (request_id, dt)) "
            f"TO '{staging}' (FORMAT parquet, PARTITION_BY (_day, _part))"
        )
    chunks: list[Chunk] = []
    schema = None
    for day_dir in sorted(staging.glob("_day=*")):
        day = date.fromisoformat(day_dir.name.split("=", 1)[1])
        part_dirs = sorted(day_dir.glob("_part=*"), key=lambda p: int(p.name.split("=", 1)[1]))
        snapshots = None
        if uses_session_features(feature_service):  # one replay of the day's raw events for all its chunks
            files = [path for part_dir in part_dirs for path in sorted(part_dir.glob("*.parquet"))]
            request_ids = pq.read_table(files, columns=["request_id"], partitioning=None).column(0).to_pandas()
            snapshots = request_snapshots(settings, request_ids, day, day)
        for part_dir in part_dirs:
            table = pq.read_table(sorted(part_dir.glob("*.parquet")), partitioning=None)
            types = {field.name: field.type for field in table.schema}
            frame = table.to_pandas().drop(columns=["_day", "_part"], errors="ignore")
            frame = finish_chunk(settings, frame, feature_service, snapshots)
            schema = schema or chunk_schema(frame, types)
            path = out / f"{day.isoformat()}-{int(part_dir.name.split('=', 1)[1]):05d}.parquet"
            chunks.append(write_chunk(frame, path, schema))
            shutil.rmtree(part_dir)
    shutil.rmtree(staging)
    chunked = ChunkedSet(directory=out, chunks=chunks, columns=list(schema.names) if schema else [])
    chunked.write_manifest()
    log.info(
        "training set: %d rows in %d chunks of <= %d rows under %s", chunked.rows, len(chunks), rows_per_chunk, out
    )
    return chunked
