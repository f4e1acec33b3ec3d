"""A step's memory budget applied to DuckDB: every connection ShopRank opens is capped and spills under the home.

``settings.resources.memory_budget_gib`` is what one pipeline step may use; DuckDB gets
``settings.duckdb_memory_limit`` of it (its buffer manager spills to ``settings.duckdb_temp_dir`` beyond that), the
rest is for Python. When even spilling cannot keep a query within the limit, DuckDB raises "Out of Memory": ShopRank
turns that into :class:`MemoryBudgetError`, naming the budget, so a step fails with a message rather than growing
until the kernel's OOM killer ends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shoprank.settings import Settings

if TYPE_CHECKING:
    import duckdb

__all__ = ["MemoryBudgetError", "budget_error", "budget_note", "duckdb_connect", "out_of_memory", "within_budget"]

# How DuckDB words a query that could not stay within memory_limit (its OutOfMemoryException's message); tools that
# run DuckDB for us (dbt-duckdb, Feast's offline store through ibis) pass only the text on.
OUT_OF_MEMORY = "Out of Memory Error"


class MemoryBudgetError(RuntimeError):
    """A step needed more memory than its budget allows, even spilling to disk."""


def budget_note(settings: Settings) -> str:
    r = settings.resources
    return (
        f"memory budget settings.resources.memory_budget_gib = {r.memory_budget_gib} GiB "
        f"(SHOPRANK_RESOURCES__MEMORY_BUDGET_GIB); DuckDB memory_limit {settings.duckdb_memory_limit}, "
        f"spilling to {settings.duckdb_temp_dir}"
    )


def duckdb_connect(
    settings: Settings, database: str | Path = ":memory:", read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection within the step's budget: memory_limit, temp_directory under the home, UTC.

    An invalid limit (e.g. a malformed ``SHOPRANK_WAREHOUSE_MEMORY_LIMIT``) raises DuckDB's own error here.
    """
    import duckdb

    settings.duckdb_temp_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": settings.duckdb_memory_limit,
        "temp_directory": str(settings.duckdb_temp_dir),
    }
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    con.execute("set TimeZone = 'UTC'")
    return con


def out_of_memory(text: str) -> bool:
    """Whether an error's text is DuckDB's "Out of Memory" (as dbt or ibis pass it on)."""
    return OUT_OF_MEMORY in text


def budget_error(settings: Settings, what: str, said: str) -> MemoryBudgetError:
    """The error of ``what`` running out of memory within the budget; ``said``: the engine's own first line."""
    return MemoryBudgetError(
        f"{what} ran out of memory within its {budget_note(settings)}: raise the budget, or give the step a "
        f"machine with more memory. DuckDB said: {said}"
    )


@contextmanager
def within_budget(settings: Settings, what: str) -> Iterator[None]:
    """Turn DuckDB's "Out of Memory" inside the block into a :class:`MemoryBudgetError` naming ``what`` and the
    budget."""
    import duckdb

    try:
        yield
    except duckdb.OutOfMemoryException as error:
        raise budget_error(settings, what, str(error).splitlines()[0]) from error
