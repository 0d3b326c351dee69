"""The content check: the same aggregates over the same projection in Snowflake and in the mirror, compared
exactly. Equal row counts prove nothing of the values; a row changed in Snowflake without its cursor moving
leaves an incremental copy wrong with the counts equal.

Per column, each side computes what both compute the same way:
- every column: its non-null count;
- numbers: min and max, and for up to 18 digits their exact sum (a 38-digit sum could overflow Snowflake's
  NUMBER); floats: min and max (a float sum depends on the order of the additions);
- timestamps: min, max and sum of the epoch microseconds the unload itself carries; dates and times: min, max;
- text and semi-structured (its JSON text): one MD5 per row over all of them, its first 64 bits summed as a
  number (the MD5 of the same UTF-8 bytes is the same number on both sides), which sees a changed value
  whatever its length;
  binary: lengths and each value's MD5;
- booleans: how many are true.

One aggregate query in Snowflake: a scan of the table's columns, no file written (and a second, when the row MD5
of several text columns differs, to name which). The mirror's side skips rows marked deleted (`deletes: mark`).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from sync_project.sync.catalog import Column, describe_table
from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror import Mirror, table_columns
from sync_project.sync.mirror.access import Log, quiet
from sync_project.sync.options import Connect
from sync_project.sync.stage import execute
from sync_project.sync.state import DELETED_AT
from sync_project.sync.tables import TableRef, quote_identifier
from sync_project.sync.types import duckdb_type_name

# (name, Snowflake aggregate, DuckDB aggregate); `{}` is the column's expression on each side. Every sum's
# argument is cast in Snowflake, so no engine adds in floating point (the embedded Snowflake would, as fakesnow
# does). DuckDB's own sums of integers and decimals up to 18 digits are exact (HUGEINT, DECIMAL(38, s)), and a
# cast there costs more than the sum (0.3 s of 10,000,000 rows per column).
Aggregate = tuple[str, str, str]
_COUNT: Aggregate = ("non-null count", "COUNT({})", "count({})")
_MIN: Aggregate = ("min", "MIN({})", "min({})")
_MAX: Aggregate = ("max", "MAX({})", "max({})")
_LENGTHS: Aggregate = ("sum of lengths", "SUM(LENGTH({})::NUMBER(38,0))", "sum(length({}))")
_BYTES: Aggregate = ("sum of lengths", "SUM(LENGTH({})::NUMBER(38,0))", "sum(octet_length({}))")
_MD5_LOW_BYTES = "CAST(md5_number({0}) & 18446744073709551615::UHUGEINT AS UBIGINT)"
# Snowflake's MD5_NUMBER_UPPER64 reads the digest's first 8 bytes big-endian; DuckDB's md5_number reads them
# little-endian, so the mirror's side swaps them (DuckDB has no byte swap; it computes md5_number once). A number
# instead of hex text to cut and parse: the row hash of 10,000,000 rows takes 1.1 s in DuckDB instead of 1.7 s.
# 64 bits: a sum over a billion rows stays far inside NUMBER(38,0).
_HASHES: Aggregate = (
    "sum of MD5s",
    "SUM(MD5_NUMBER_UPPER64({})::NUMBER(38,0))",
    "sum(" + " | ".join(f"((({_MD5_LOW_BYTES} >> {8 * i}) & 255::UBIGINT) << {8 * (7 - i)})" for i in range(8)) + ")",
)
_TRUES: Aggregate = ("true count", "COUNT_IF({})", "count_if({})")


_TEXT_KINDS = ("VARCHAR", "JSON")


def _aggregates(column: Column) -> tuple[str, list[Aggregate]]:
    """The DuckDB-side expression of the column and its aggregates (the Snowflake side uses the projection).
    Text's values are hashed once per row over all text columns (`_row_hash`), not here."""
    kind = duckdb_type_name(column.duckdb_type)
    mirror = quote_identifier(column.name)
    if kind in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
        micros: Aggregate = ("sum of epoch microseconds", "SUM({})", "sum({})")
        return f"epoch_us({mirror})", [_COUNT, _MIN, _MAX, micros]
    if kind == "BIGINT" or (kind.startswith("DECIMAL(") and int(kind[8:].split(",")[0]) <= 18):
        scale = kind.rstrip(")").split(",")[1] if kind.startswith("DECIMAL(") else "0"
        total: Aggregate = ("sum", f"SUM({{}}::NUMBER(38,{scale}))", "sum({})")
        return mirror, [_COUNT, _MIN, _MAX, total]
    if kind.startswith("DECIMAL(") or kind in ("DOUBLE", "DATE", "TIME"):
        return mirror, [_COUNT, _MIN, _MAX]
    if kind in _TEXT_KINDS:
        return f"CAST({mirror} AS VARCHAR)", [_COUNT, _LENGTHS]
    if kind == "BLOB":
        return mirror, [_COUNT, _BYTES, _HASHES]
    if kind == "BOOLEAN":
        return mirror, [_COUNT, _TRUES]
    return mirror, [_COUNT]


def _snowflake_expression(column: Column) -> str:
    """The column as the unload presents it (epoch microseconds, JSON text, WKT), unaliased."""
    return column.mapping.unload_expression.format(quote_identifier(column.name))


@dataclass(frozen=True)
class Probe:
    """One aggregate, written for each side; `column` names what it covers (a column, or text columns joined)."""

    column: str
    aggregate: str
    snowflake: str
    mirror: str


_ROW_HASHES = "sum of row MD5s"  # the row hash of several text columns
ROW_COUNT = Probe("rows", "row count", "COUNT(*)", "count(*)")


def _hash_probe(name: str, snowflake_text: str, mirror_text: str, aggregate: str = _HASHES[0]) -> Probe:
    return Probe(name, aggregate, _HASHES[1].format(snowflake_text), _HASHES[2].format(mirror_text))


def _row_hash(texts: list[Column]) -> Probe:
    """One MD5 per row over all text columns (a NULL as CHR(30), columns apart by CHR(31)): an MD5 costs a scan
    about ten times the rest of the check's, and one per row instead of one per text value keeps the check near a
    tenth of a full sync. Which column differs, `pinpoint` finds when it does."""

    def joined(expressions: list[str], null: str, apart: str) -> str:
        return f", {apart}, ".join(f"COALESCE({e}, {null})" for e in expressions)

    # No part is NULL, so CONCAT's NULL rules do not matter; DuckDB's concat builds one string where a chain of
    # `||` builds one per step (a quarter of the mirror's check at 10,000,000 rows).
    snowflake = f"CONCAT({joined([_snowflake_expression(c) for c in texts], 'CHR(30)', 'CHR(31)')})"
    mirror = f"concat({joined([_aggregates(c)[0] for c in texts], 'chr(30)', 'chr(31)')})"
    if len(texts) == 1:
        return _hash_probe(texts[0].name, snowflake, mirror)
    return _hash_probe(", ".join(c.name for c in texts), snowflake, mirror, _ROW_HASHES)


def column_probes(columns: list[Column], untaken: str | None = None) -> list[Probe]:
    """Each column's own aggregates (no row hash). With `untaken`, a WHERE, Snowflake's side covers only the rows
    it does not match (a NULL condition is not a match, as in the read): the deletes pass compares the key columns
    of the rows an incremental read left (deletes.py)."""
    planned = []
    for column in columns:
        mirror, aggregates = _aggregates(column)
        snowflake = _snowflake_expression(column)
        if untaken is not None:
            snowflake = f"IFF({untaken}, NULL, {snowflake})"
        planned += [Probe(column.name, a[0], a[1].format(snowflake), a[2].format(mirror)) for a in aggregates]
    return planned


def _plan(columns: list[Column]) -> list[Probe]:
    """Every column's aggregates and the row hash; a text column's sum of lengths is left to the row hash, which
    sees any change the lengths would (a fifth of the check's time at 10,000,000 rows)."""
    texts = [c for c in columns if duckdb_type_name(c.duckdb_type) in _TEXT_KINDS]
    hashed = {c.name for c in texts}
    probes = [p for p in column_probes(columns) if not (p.column in hashed and p.aggregate == _LENGTHS[0])]
    return probes + ([_row_hash(texts)] if texts else [])


def _pinpoints(columns: list[Column]) -> list[Probe]:
    """Each text column's own MD5 sum: asked for only when the row hash of several differs."""
    texts = [c for c in columns if duckdb_type_name(c.duckdb_type) in _TEXT_KINDS]
    return [_hash_probe(c.name, _snowflake_expression(c), _aggregates(c)[0]) for c in texts]


@dataclass(frozen=True)
class ColumnDifference:
    column: str
    aggregate: str
    snowflake: Any
    mirror: Any

    def __str__(self) -> str:
        return f"{self.column}: {self.aggregate} is {self.snowflake!r} in Snowflake, {self.mirror!r} in DuckDB"


@dataclass(frozen=True)
class ContentReport:
    """What the content check compared, and the columns whose aggregates differ (in the table's order)."""

    table: TableRef
    aggregates: int
    differences: list[ColumnDifference]

    @property
    def equal(self) -> bool:
        return not self.differences

    @property
    def differing_columns(self) -> list[str]:
        return list(dict.fromkeys(d.column for d in self.differences))

    def summary(self, first: int = 5) -> str:
        if self.equal:
            return f"{self.table}: content equal ({self.aggregates} aggregates over every column)"
        names = self.differing_columns
        return (
            f"{self.table}: content differs in {len(names)} column(s): {', '.join(names[:first])}"
            + ("" if len(names) <= first else ", ...")
            + "; "
            + "; ".join(str(d) for d in self.differences[:first])
        )


def snowflake_content(
    conn: Any, table: TableRef, columns: list[Column], probes: list[Probe] | None = None
) -> list[Any]:
    """Every aggregate of `columns` (or the given probes) in Snowflake: one query, one scan of the table."""
    selected = ", ".join(p.snowflake for p in (probes if probes is not None else _plan(columns)))
    cur = execute(conn, f"SELECT {selected} FROM {table.snowflake_sql}", f"verifying the content of {table}")
    row = cur.fetchone()
    return list(row or [])


def mirror_content(
    con: duckdb.DuckDBPyConnection,
    table: TableRef,
    columns: list[Column],
    marked: bool,
    probes: list[Probe] | None = None,
) -> list[Any]:
    """The same aggregates over the mirror's table, rows marked deleted left out."""
    return relation_aggregates(con, table.duckdb_sql, probes if probes is not None else _plan(columns), marked)


def relation_aggregates(con: duckdb.DuckDBPyConnection, relation: str, probes: list[Probe], marked: bool) -> list[Any]:
    """The probes' DuckDB side over any relation (a table, the load's batch), rows marked deleted left out."""
    live = f" WHERE {quote_identifier(DELETED_AT)} IS NULL" if marked else ""
    row = con.execute(f"SELECT {', '.join(p.mirror for p in probes)} FROM {relation}{live}").fetchone()
    return list(row or [])


def _same(left: Any, right: Any) -> bool:
    normal: Callable[[Any], Any] = _normalised
    return bool(normal(left) == normal(right))


def _normalised(value: Any) -> Any:
    """Numbers compared by value whatever type a driver returned (int, Decimal, float); NaN equals NaN."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
        return decimal.Decimal(value)
    return value


def differences(probes: list[Probe], snowflake: list[Any], mirror: list[Any]) -> list[ColumnDifference]:
    return [
        ColumnDifference(probe.column, probe.aggregate, left, right)
        for probe, left, right in zip(probes, snowflake, mirror, strict=True)
        if not _same(left, right)
    ]


def compare_content(table: TableRef, columns: list[Column], snowflake: list[Any], mirror: list[Any]) -> ContentReport:
    return ContentReport(table, len(snowflake), differences(_plan(columns), snowflake, mirror))


def needs_pinpointing(report: ContentReport) -> bool:
    """Whether a difference names several text columns at once (their row hash): `pinpoint` tells which."""
    return any(d.aggregate == _ROW_HASHES for d in report.differences)


def verify_content(connect: Connect, mirror: Mirror, table: TableRef, log: Log = quiet) -> ContentReport:
    """Compare the table's content in Snowflake and in the mirror: Snowflake first (DESC, one aggregate query),
    then a read-only session of the mirror; if several text columns' row hash differs, each one's own MD5 sum on
    both sides names which. A table the mirror does not hold, or holds with other columns, is an error that says to
    sync it (the schema check names the columns)."""
    with connect() as conn:
        columns = describe_table(conn, table)
        snowflake = snowflake_content(conn, table, columns)
    with mirror.session(f"verifying {table}", read_only=True, log=log) as con:
        held = table_columns(con, table)
        missing = [c.name for c in columns if c.name not in held]
        if missing:
            raise PermanentError(
                f"{table}: the mirror {'has no such table' if not held else f'lacks column(s) {missing}'}; "
                f"sync it (sync-project sync {table.key}, or materialize its partition) before verifying it"
            )
        found = mirror_content(con, table, columns, DELETED_AT in held)
        report = compare_content(table, columns, snowflake, found)
        if not needs_pinpointing(report):
            return report
        probes = _pinpoints(columns)
        in_mirror = mirror_content(con, table, columns, DELETED_AT in held, probes)
    with connect() as conn:
        in_snowflake = snowflake_content(conn, table, columns, probes)
    named = differences(probes, in_snowflake, in_mirror)
    kept = [d for d in report.differences if d.aggregate != _ROW_HASHES]
    # No column's own sum differs (a value moved between columns): the row hash's difference stands.
    return ContentReport(table, report.aggregates, kept + (named or [d for d in report.differences if d not in kept]))
