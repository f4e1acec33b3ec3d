"""A training set on disk: parquet chunks of whole requests, one day each, in (day, request_id) order.

Every chunk has the same Arrow schema (ids and keys string, labels int64, every other number float64, ``dt`` a
date), whatever its rows hold: a column that is all missing in one chunk still has its type, so chunks concatenate
and the scored holdout is one parquet file. Missing values stay NaN, as the model matrix wants them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

MANIFEST = "chunks.json"
LABELS = ("relevance", "label_click", "label_purchase")
STRING_COLUMNS = ("impression_id", "request_id", "user_id", "item_id", "seller_id")


@dataclass(frozen=True)
class Chunk:
    """One parquet file of whole requests of one day, ordered by (request_id, impression_id)."""

    path: str
    day: date
    rows: int


@dataclass
class ChunkedSet:
    """The training set on disk: chunks in (day, request_id) order, and the columns each one has."""

    directory: Path
    chunks: list[Chunk]
    columns: list[str]

    @property
    def days(self) -> list[date]:
        return sorted({chunk.day for chunk in self.chunks})

    @property
    def rows(self) -> int:
        return sum(chunk.rows for chunk in self.chunks)

    def on_days(self, days: list[date]) -> list[Chunk]:
        """The chunks of ``days``, in order."""
        wanted = set(days)
        return [chunk for chunk in self.chunks if chunk.day in wanted]

    def write_manifest(self) -> None:
        rows = [{**asdict(chunk), "day": chunk.day.isoformat()} for chunk in self.chunks]
        (self.directory / MANIFEST).write_text(json.dumps({"columns": self.columns, "chunks": rows}, indent=1))


def chunk_schema(frame: pd.DataFrame, types: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The chunk schema of ``frame``'s columns: ``types`` (e.g. DuckDB's) for strings, dates and timestamps;
    labels int64; any other column float64 unless it holds strings (object dtype)."""
    types = types or {}
    fields = []
    for name in frame.columns:
        known = types.get(name)
        if known is not None and (pa.types.is_string(known) or pa.types.is_large_string(known)):
            fields.append(pa.field(name, pa.string()))
        elif name == "dt":
            fields.append(pa.field(name, pa.date32()))
        elif name == "event_timestamp" or (known is not None and pa.types.is_timestamp(known)):
            fields.append(pa.field(name, known if known is not None else pa.timestamp("us", tz="UTC")))
        elif name in LABELS:
            fields.append(pa.field(name, pa.int64()))
        elif name in STRING_COLUMNS or (frame[name].dtype == object and not _numeric_objects(frame[name])):
            fields.append(pa.field(name, pa.string()))
        else:
            fields.append(pa.field(name, pa.float64()))
    return pa.schema(fields)


def _numeric_objects(column: pd.Series) -> bool:
    values = column.dropna()
    return len(values) == 0 or all(isinstance(v, int | float | np.number) for v in values.head(100))


def to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as an Arrow table of ``schema`` (numbers as float64, all-missing string columns typed)."""
    out = {}
    for field in schema:
        column = frame[field.name]
        if pa.types.is_floating(field.type):
            column = pd.to_numeric(column, errors="coerce").astype("float64")
        out[field.name] = pa.array(column, type=field.type, from_pandas=True)
    return pa.table(out, schema=schema)


def write_chunk(frame: pd.DataFrame, path: Path, schema: pa.Schema) -> Chunk:
    import pyarrow.parquet as pq

    pq.write_table(to_table(frame, schema), path)
    return Chunk(path=str(path), day=_day(frame["dt"].iloc[0]), rows=len(frame))


def _day(value: object) -> date:
    return value if isinstance(value, date) else pd.Timestamp(value).date()  # type: ignore[arg-type]


def request_parts(frame: pd.DataFrame, rows_per_chunk: int) -> Iterator[pd.DataFrame]:
    """``frame`` (one day, ordered by request) cut into parts of whole requests, each up to ``rows_per_chunk``
    rows (a request bigger than that is a part of its own)."""
    sizes = frame.groupby("request_id", sort=False).size()
    part = ((sizes.cumsum() - sizes) // rows_per_chunk).rename("_part")
    labels = frame["request_id"].map(part).to_numpy()
    for value in pd.unique(labels):
        yield frame[labels == value].reset_index(drop=True)


def frame_to_chunks(frame: pd.DataFrame, out: Path, rows_per_chunk: int) -> ChunkedSet:
    """Write an in-memory training frame (tests, small imports) as a chunked set under ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ordered = frame.assign(_day=frame["dt"].map(_day))
    ordered = ordered.sort_values(["_day", "request_id", "impression_id"], kind="mergesort").drop(columns="_day")
    schema = chunk_schema(ordered)
    chunks = []
    for day, rows in ordered.groupby(ordered["dt"].map(_day), sort=True):
        for n, part in enumerate(request_parts(rows.reset_index(drop=True), rows_per_chunk)):
            chunks.append(write_chunk(part, out / f"{day.isoformat()}-{n:05d}.parquet", schema))
    chunked = ChunkedSet(directory=out, chunks=chunks, columns=list(schema.names))
    chunked.write_manifest()
    return chunked


def read_chunk(chunk: Chunk, columns: list[str] | None = None) -> pd.DataFrame:
    """One chunk's rows (``columns`` only, when given); ``dt`` as dates."""
    return pd.read_parquet(chunk.path, columns=columns)


def split_days(
    days: list[date], holdout_days: int, burn_in_days: int, validation_days: int
) -> tuple[list[date], list[date], list[date]]:
    """(fit, validation, holdout) days, as training.dataset.time_split then validation_split cut a frame: skip the
    first ``burn_in_days``, hold out the last ``holdout_days``, validate on the last ``validation_days`` of the rest
    (none when the rest has too few days: the caller trains without early stopping)."""
    days = sorted(days)
    if len(days) <= burn_in_days + holdout_days:
        raise ValueError(
            f"need more than {burn_in_days} burn-in + {holdout_days} holdout days of examples, have {len(days)}"
        )
    train, holdout = days[burn_in_days:-holdout_days], days[-holdout_days:]
    if len(train) <= validation_days:
        return train, [], holdout
    return train[:-validation_days], train[-validation_days:], holdout
