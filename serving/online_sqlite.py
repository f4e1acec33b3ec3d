"""The user's online read straight from Feast's SQLite online store: what ``FeatureStore.get_online_features``
answers for the user and user x category views, without its per-call planning.

Feast's path (registry lookups, entity-row grouping, one ``online_read`` per view, then a response proto of every
value for every entity row) was most of the ~2 ms a ``/rank`` spent on the user's features at 1M events. This reads
each view's own table (``<project>_<view>``, Feast's name for it) with Feast's own statement, one indexed
``SELECT ... WHERE entity_key IN (...)`` over the entity keys Feast would serialise (``serialize_entity_key``), and
decodes only the requested features' stored ``Value`` protos with Feast's own converter. Values and event
timestamps are Feast's: a key without rows reads None with no timestamp (0), a key with rows but not the feature
reads None with the key's timestamp (its last row's, as Feast takes it), and no TTL is applied (Feast applies none
on an online read either). ``tests/serving/test_online_sqlite.py`` compares both for existing, missing and cold
users over every view the served feature services read.

Used only when the store's online store is SQLite (the ``local`` profile); Redis and the rest keep Feast's path
(:meth:`SqliteUserRead.build` returns None). The file is opened read-only, one connection per thread and reader: a
reader reopened after a failed read (serving.state.reopen_reader) opens the file afresh.
"""

from __future__ import annotations

import calendar
import sqlite3
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprank.ranking_features import CATEGORY_KEY

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

# per feature name: each entity row's python value (None when absent) and its event timestamp in seconds (0: none)
Columns = dict[str, tuple[list[Any], list[int]]]


@dataclass(frozen=True)
class _Table:
    sql: str  # Feast's own statement, for this table and this many entity keys
    features: tuple[str, ...]
    per_category: bool  # keyed on user_id + category_id (one entity row per category) rather than user_id


class SqliteUserRead:
    """One read of the user's rows in every user / user x category view of a reader, from the SQLite file."""

    def __init__(self, db_path: str, tables: Sequence[_Table], user_type: int, category_type: int | None) -> None:
        self.db_path = db_path
        self.tables = tuple(tables)
        self.user_type = user_type
        self.category_type = category_type
        self._local = threading.local()
        # per category count: the user key's and each category key's bytes before the user's value
        self._prefixes: dict[int, list[bytes] | None] = {}

    @classmethod
    def build(
        cls,
        store: FeatureStore,
        user_views: Sequence[tuple[FeatureView, Sequence[str]]],
        category_views: Sequence[tuple[FeatureView, Sequence[str]]],
        n_categories: int,
    ) -> SqliteUserRead | None:
        """The direct read of these views' features, or None when the store is not SQLite (or its keys are of a type
        this does not serialise: Feast's path then)."""
        from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id
        from feast.value_type import ValueType

        config = store.config
        if not (user_views or category_views) or getattr(config.online_store, "type", None) != "sqlite":
            return None
        versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
        types: dict[str, int] = {}
        for view, _ in [*user_views, *category_views]:
            for column in view.entity_columns:
                types[column.name] = column.dtype.to_value_type().value
        keyed = {ValueType.STRING.value, ValueType.INT64.value, ValueType.INT32.value}
        if not set(types.values()) <= keyed:
            return None
        tables = []
        for views, per_category in ((user_views, False), (category_views, True)):
            count = n_categories if per_category else 1
            for view, names in views:
                table = _table_id(config.project, view, versioning).replace('"', '""')
                sql = (
                    f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" '
                    f"WHERE entity_key IN ({','.join('?' * count)}) ORDER BY entity_key"
                )
                tables.append(_Table(sql, tuple(names), per_category))
        db_path = SqliteOnlineStore._get_db_path(config)
        return cls(db_path, tables, types.get("user_id", ValueType.STRING.value), types.get(CATEGORY_KEY))

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            uri = Path(self.db_path).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True)  # event_ts raw: converted once per key (_seconds), not per row
            self._local.conn = conn
        return conn

    def keys(self, user_id: str, n_categories: int) -> tuple[list[bytes], list[bytes]]:
        """The serialised entity keys Feast would look up: the user's, and the user's with each category."""
        if n_categories not in self._prefixes:
            self._prefixes[n_categories] = self._key_prefixes(n_categories)
        prefixes = self._prefixes[n_categories]
        if prefixes is None:
            return self._feast_keys(user_id, n_categories)
        user = _string_key(user_id)
        return [prefixes[0] + user], [prefix + user for prefix in prefixes[1:]]

    def _feast_keys(self, user_id: str, n_categories: int) -> tuple[list[bytes], list[bytes]]:
        """:meth:`keys` by Feast's ``serialize_entity_key`` for each key."""
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        user = _value(user_id, self.user_type)
        user_key = [serialize_entity_key(EntityKey(join_keys=["user_id"], entity_values=[user]), 3)]
        if self.category_type is None:
            return user_key, []
        category_keys = [
            serialize_entity_key(
                EntityKey(join_keys=["user_id", CATEGORY_KEY], entity_values=[user, _value(c, self.category_type)]), 3
            )
            for c in range(n_categories)
        ]
        return user_key, category_keys

    def _key_prefixes(self, n_categories: int) -> list[bytes] | None:
        """The user key's and each category key's bytes before the user's value (Feast serialises the sorted keys'
        names, then their values: user_id sorts last), checked against Feast's own serialisation on two users;
        None when they do not agree or the user key is not a string (then every key goes through Feast's function)."""
        if self.user_type != _STRING:
            return None
        prefixes: list[bytes] = []
        for probe in ("u-probe", "ü"):
            user_key, category_keys = self._feast_keys(probe, n_categories)
            tail = _string_key(probe)
            if not all(key.endswith(tail) for key in user_key + category_keys):
                return None
            found = [key[: -len(tail)] for key in user_key + category_keys]
            if prefixes and found != prefixes:
                return None
            prefixes = found
        return prefixes

    def read(self, user_id: str, n_categories: int) -> Columns:
        """Per feature: the python value and the event timestamp (seconds) of each entity row, as Feast's response
        holds them (user views: one row; user x category views: one per category, in category order)."""
        from feast.protos.feast.types.Value_pb2 import Value

        user_key, category_keys = self.keys(user_id, n_categories)
        conn = self._connection()
        out: Columns = {}
        for table in self.tables:
            keys = category_keys if table.per_category else user_key
            found: dict[bytes, tuple[dict[str, bytes], Any]] = {}
            for key, name, blob, ts in conn.execute(table.sql, keys).fetchall():
                values, _ = found.get(key, ({}, None))
                values[name] = blob
                found[key] = (values, ts)  # the key's timestamp: its last row's, as Feast's online_read takes it
            stamps = [_seconds(found[key][1]) if key in found else 0 for key in keys]
            for name in table.features:
                column = []
                for key in keys:
                    blob = found[key][0].get(name) if key in found else None
                    column.append(None if blob is None else _python(Value.FromString(blob)))
                out[name] = (column, stamps)
        return out


_STRING = 2  # feast.value_type.ValueType.STRING
# Value kinds Feast's feast_value_type_to_python_type returns as they are (getattr of the set field)
_PLAIN = frozenset({"int32_val", "int64_val", "double_val", "float_val", "string_val", "bool_val", "bytes_val"})


def _python(value: Any) -> Any:
    """feast_value_type_to_python_type, without its checks for the scalar kinds it returns unchanged."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _PLAIN:
        return getattr(value, kind)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


def _string_key(value: str) -> bytes:
    """A string entity value as serialize_entity_key (version 3) writes it: type, length, UTF-8 bytes."""
    encoded = value.encode("utf8")
    return struct.pack("<II", _STRING, len(encoded)) + encoded


def _value(value: Any, value_type: int) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.value_type import ValueType

    if value_type == ValueType.STRING.value:
        return Value(string_val=str(value))
    if value_type == ValueType.INT32.value:
        return Value(int32_val=int(value))
    return Value(int64_val=int(value))


def _seconds(ts: Any) -> int:
    """A raw event_ts cell as Feast's response stamps it: Feast's sqlite converter reads the stored Unix seconds as a
    naive local datetime, online_read labels it UTC and the response takes Timestamp.FromDatetime's seconds."""
    if ts is None:
        return 0
    try:
        stamp = datetime.fromtimestamp(int(ts))
    except ValueError:  # an ISO text cell
        stamp = datetime.fromisoformat(ts.decode() if isinstance(ts, bytes) else ts)
    stamp = stamp.astimezone(UTC) if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return calendar.timegm(stamp.utctimetuple())
