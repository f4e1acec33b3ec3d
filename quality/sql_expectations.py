"""GX expectations evaluated as DuckDB aggregates over a relation, so the mart gate runs where the data is.

Great Expectations 1.24 cannot validate DuckDB here (no SQLAlchemy dialect is installed, and with duckdb_engine its
SQL metric bundles fail: great_expectations#10738), and its pandas engine needs every mart in memory (10M events:
5.3 GiB for the mart gate). So the suites stay GX objects (quality/suites.py declares them) and this module evaluates
each expectation with one aggregate query, returning GX's own ``ExpectationValidationResult`` with the fields the
pandas engine reports: element_count, missing and unexpected counts and percents and a sample of offending values
for row-level expectations, ``observed_value`` for aggregate ones. Semantics follow GX's: row conditions skip missing
values (pairs skip rows where both are missing, compound keys rows where all are), ``mostly`` is 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import great_expectations.expectations as gxe
    from great_expectations.core import ExpectationValidationResult


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL literal for a value of an expectation's kwargs (numbers, strings, timestamps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"cast('{value!r}' as double)" if isinstance(value, float) else str(value)
    if hasattr(value, "isoformat"):
        return f"cast('{value.isoformat()}' as timestamptz)"
    return "'" + str(value).replace("'", "''") + "'"


def _bounds(column: str, kwargs: dict[str, Any]) -> str:
    """The expected-range predicate of a between expectation (strict_min / strict_max as GX reads them)."""
    terms = []
    if kwargs.get("min_value") is not None:
        terms.append(f"{column} {'>' if kwargs.get('strict_min') else '>='} {literal(kwargs['min_value'])}")
    if kwargs.get("max_value") is not None:
        terms.append(f"{column} {'<' if kwargs.get('strict_max') else '<='} {literal(kwargs['max_value'])}")
    return " and ".join(terms) or "true"


def _row_rule(kind: str, kwargs: dict[str, Any], relation: str) -> tuple[str, str, list[str]]:
    """(rows considered, unexpected rows among them, columns sampled) of a row-level expectation, as predicates."""
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = quote(kwargs["column_A"]), quote(kwargs["column_B"])
        compare = ">=" if kwargs.get("or_equal") else ">"
        return f"not ({a} is null and {b} is null)", f"not coalesce({a} {compare} {b}, false)", [a, b]
    if kind == "expect_compound_columns_to_be_unique":
        columns = [quote(c) for c in kwargs["column_list"]]
        keys = ", ".join(columns)
        present = " or ".join(f"{c} is not null" for c in columns)
        duplicated = f"select {keys} from {relation} group by all having count(*) > 1"
        return present, f"({keys}) in ({duplicated})", columns
    column = quote(kwargs["column"])
    if kind == "expect_column_values_to_not_be_null":
        return "true", f"{column} is null", [column]
    if kind == "expect_column_values_to_be_unique":
        duplicated = f"select {column} from {relation} where {column} is not null group by all having count(*) > 1"
        return f"{column} is not null", f"{column} in ({duplicated})", [column]
    if kind == "expect_column_values_to_be_in_set":
        values = ", ".join(literal(v) for v in kwargs["value_set"])
        return f"{column} is not null", f"{column} not in ({values})", [column]
    if kind == "expect_column_values_to_be_between":
        return f"{column} is not null", f"not ({_bounds(column, kwargs)})", [column]
    raise NotImplementedError(f"{kind} has no SQL form in quality.sql_expectations")


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _row_result(
    con: duckdb.DuckDBPyConnection, relation: str, kind: str, kwargs: dict[str, Any], sample_size: int
) -> dict[str, Any]:
    considered, unexpected, sampled = _row_rule(kind, kwargs, relation)
    ((element_count, nonmissing, unexpected_count),) = con.execute(
        f"select count(*), count(*) filter (where {considered}),"
        f" count(*) filter (where ({considered}) and ({unexpected})) from {relation}"
    ).fetchall()
    sample: list[Any] = []
    if unexpected_count:
        rows = con.execute(
            f"select {', '.join(sampled)} from {relation} where ({considered}) and ({unexpected}) limit {sample_size}"
        ).fetchall()
        if kind == "expect_compound_columns_to_be_unique":
            sample = [dict(zip(kwargs["column_list"], row, strict=True)) for row in rows]
        elif len(sampled) == 2:
            sample = [list(row) for row in rows]
        else:
            sample = [row[0] for row in rows]
    result: dict[str, Any] = {
        "element_count": element_count,
        "unexpected_count": unexpected_count,
        "unexpected_percent": _percent(unexpected_count, element_count if kind.endswith("not_be_null") else nonmissing),
        "partial_unexpected_list": sample,
    }
    if not kind.endswith("not_be_null"):
        missing = element_count - nonmissing
        result |= {
            "missing_count": missing,
            "missing_percent": _percent(missing, element_count),
            "unexpected_percent_total": _percent(unexpected_count, element_count),
            "unexpected_percent_nonmissing": _percent(unexpected_count, nonmissing),
        }
    counts: dict[str, int] = {}
    for value in sample:
        counts[repr(value)] = counts.get(repr(value), 0) + 1
    result["partial_unexpected_counts"] = [{"value": v, "count": n} for v, n in counts.items()]
    return result


def _within(observed: Any, kwargs: dict[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if observed is None:
        return False
    if low is not None and (observed <= low if kwargs.get("strict_min") else observed < low):
        return False
    return not (high is not None and (observed >= high if kwargs.get("strict_max") else observed > high))


AGGREGATE = {
    "expect_table_row_count_to_be_between": lambda kw: "count(*)",
    "expect_table_row_count_to_equal": lambda kw: "count(*)",
    "expect_column_max_to_be_between": lambda kw: f"max({quote(kw['column'])})",
}


def evaluate(
    con: duckdb.DuckDBPyConnection, relation: str, expectation: gxe.Expectation, sample_size: int
) -> ExpectationValidationResult:
    """Evaluate one expectation over ``relation`` (a table, view or parenthesised query) on ``con``.

    A query DuckDB rejects (a missing column, a type mismatch) is the expectation's exception, as GX reports one;
    DuckDB running out of memory propagates (shoprank.resources turns it into the step's budget error).
    """
    import duckdb
    from great_expectations.core import ExpectationValidationResult

    config = expectation.configuration
    kind, kwargs = config.type, dict(config.kwargs)
    try:
        if kind in AGGREGATE:
            ((observed,),) = con.execute(f"select {AGGREGATE[kind](kwargs)} from {relation}").fetchall()
            ok = observed == kwargs["value"] if kind.endswith("_to_equal") else _within(observed, kwargs)
            result: dict[str, Any] = {"observed_value": observed}
        else:
            result = _row_result(con, relation, kind, kwargs, sample_size)
            ok = result["unexpected_count"] == 0
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as error:
        return ExpectationValidationResult(
            success=False,
            expectation_config=config,
            result={},
            exception_info={"raised_exception": True, "exception_traceback": None, "exception_message": str(error)},
        )
    return ExpectationValidationResult(
        success=bool(ok),
        expectation_config=config,
        result=result,
        exception_info={"raised_exception": False, "exception_traceback": None, "exception_message": None},
    )
