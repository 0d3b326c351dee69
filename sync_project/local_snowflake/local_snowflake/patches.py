"""Where fakesnow answers differently from Snowflake, patched in place (each patch applied once).

NULL timestamps (fakesnow returns 1970-01-01), GEOGRAPHY as WKT text (ST_ASWKT is the value itself), and
INFORMATION_SCHEMA's figures and names (`info_views.patch_fakesnow_info_schema`).
"""

from __future__ import annotations

from typing import Any

import fakesnow.arrow
import fakesnow.transforms
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from fakesnow.cursor import FakeSnowflakeCursor
from sqlglot import exp

from local_snowflake import info_views, policies, twins
from local_snowflake.sqltext import ObjectName


def patch_fakesnow() -> None:
    info_views.patch_fakesnow_info_schema()
    _patch_fakesnow_null_timestamps()
    _patch_fakesnow_geography()
    _patch_fakesnow_number_casts()
    _patch_fakesnow_hex_numbers()


def _patch_fakesnow_number_casts() -> None:
    """fakesnow turns NUMBER(38,0) (and a bare NUMBER) into BIGINT wherever it appears, so a cast of a value
    beyond 64 bits fails ("Could not convert string ... to INT64") where Snowflake holds 38 digits; keep those
    as DECIMAL(38,0), and only the INT family as BIGINT."""
    original = fakesnow.transforms.integer_precision
    if getattr(original, "_keeps_38_digits", False):
        return

    def integer_precision(expression: exp.Expr) -> exp.Expr:
        if isinstance(expression, exp.DataType) and expression.this == exp.DataType.Type.DECIMAL:
            if not expression.expressions:
                return exp.DataType.build("DECIMAL(38, 0)")
            return expression
        result: exp.Expr = original(expression)
        return result

    integer_precision._keeps_38_digits = True  # type: ignore[attr-defined]
    fakesnow.transforms.integer_precision = integer_precision


def _patch_fakesnow_hex_numbers() -> None:
    """Snowflake's TO_NUMBER reads hexadecimal text with a format of X elements (SQL format models: X is a
    hexadecimal digit), as in TO_NUMBER('ff', 'XX') = 255; fakesnow refuses every format. Text with more digits
    than the format has X's, or any character that is not a hexadecimal digit, is an error, as in Snowflake; NULL
    stays NULL. Any other format is still refused."""
    original = fakesnow.transforms.to_decimal
    if getattr(original, "_reads_hex", False):
        return

    def to_decimal(expression: exp.Expr) -> exp.Expr:
        model = expression.args.get("format") if isinstance(expression, exp.ToNumber) else None
        if isinstance(model, exp.Literal) and model.is_string and model.this and set(model.this) <= {"X", "x"}:
            text = expression.this.sql(dialect="duckdb")
            digits = len(model.this)
            refusal = "'Numeric value ''' || (" + text + ") || ''' is not recognized'"
            return sqlglot.parse_one(
                f"CASE WHEN ({text}) IS NULL THEN NULL "
                f"WHEN regexp_full_match({text}, '[0-9A-Fa-f]{{1,{digits}}}') "
                f"THEN CAST(CAST('0x' || ({text}) AS HUGEINT) AS DECIMAL(38, 0)) "
                f"ELSE error({refusal}) END",
                read="duckdb",
            )
        result: exp.Expr = original(expression)
        return result

    to_decimal._reads_hex = True  # type: ignore[attr-defined]
    fakesnow.transforms.to_decimal = to_decimal


def _patch_fakesnow_null_timestamps() -> None:
    """fakesnow turns NULL timestamps into 1970-01-01 in query results; keep them NULL."""
    original = fakesnow.arrow.timestamp_to_sf_struct
    if getattr(original, "_keeps_nulls", False):
        return

    def timestamp_to_sf_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(pc.fill_null(ts, pa.scalar(0, ts.type)))
        if not ts.null_count:
            return struct
        return pa.StructArray.from_arrays(
            [struct.field(i) for i in range(struct.type.num_fields)],
            fields=list(struct.type),
            mask=pc.is_null(ts),
        )

    timestamp_to_sf_struct._keeps_nulls = True  # type: ignore[attr-defined]
    fakesnow.arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


_AS_TEXT_FUNCTIONS = {"ST_ASWKT", "ST_ASTEXT"}


# Snowflake: SEQ4 "generates a sequence of monotonically increasing integers ... the sequence is not
# guaranteed to be gap-free". The emulator leaves a gap after every block of this many values, so a caller that
# wants 0..N-1 must use ROW_NUMBER(); SEQ8 stays gap-free (test data leans on it; noted in the README).
SEQ4_BLOCK = 1000


def _seq4_with_gaps(node: exp.Expr) -> exp.Expr:
    if type(node).__name__ == "Seq4":
        text = f"(range % 4294967296 + (range % 4294967296) // {SEQ4_BLOCK} * {SEQ4_BLOCK})"
        return exp.maybe_parse(text, dialect="duckdb")
    return node


def _with_row_policies(expression: exp.Expr, database: str | None, schema: str | None) -> exp.Expr:
    """Each table read (in a FROM or a JOIN) that has a row access policy becomes the rows its policy allows."""
    current = policies.CURRENT.get()
    if current is None or not current[0].attached:
        return expression
    store, role = current

    def rewrite(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Table) or node.meta.get("row_policy_applied"):
            return node
        if not isinstance(node.parent, exp.From | exp.Join):
            return node
        name = twins.identifier_part(node.args.get("this"))
        db = twins.identifier_part(node.args.get("catalog")) or database
        sch = twins.identifier_part(node.args.get("db")) or schema
        if not (name and db and sch):
            return node
        found = store.on(ObjectName(db, sch, name))
        return policies.filtered(node, found[0], found[1], role) if found else node

    return expression.transform(rewrite, copy=False)


def _big_endian_64(little_endian: str) -> str:
    """The 8 bytes of a UBIGINT read in the other order (DuckDB has no byte swap); DuckDB computes the repeated
    argument once."""
    return " | ".join(f"((({little_endian} >> {8 * i}) & 255::UBIGINT) << {8 * (7 - i)})" for i in range(8))


def _md5_numbers(node: exp.Expr) -> exp.Expr:
    """MD5_NUMBER_UPPER64 / MD5_NUMBER_LOWER64: the MD5 digest read as a big-endian 128-bit number, its upper or
    lower 64 bits as an unsigned integer (Snowflake's docs: MD5_NUMBER_UPPER64('Snowflake') =
    17145559544104499780). DuckDB's md5_number reads the same digest little-endian, so each half is byte-swapped.
    NULL stays NULL. sqlglot parses both, but writes no DuckDB for them."""
    if isinstance(node, exp.MD5NumberUpper64 | exp.MD5NumberLower64):
        digest = f"md5_number({node.this.sql(dialect='duckdb')})"
        upper = isinstance(node, exp.MD5NumberUpper64)  # the digest's first 8 bytes: md5_number's low half
        half = f"{digest} & 18446744073709551615::UHUGEINT" if upper else f"{digest} >> 64"
        swapped = _big_endian_64(f"CAST({half} AS UBIGINT)")
        return exp.maybe_parse(f"CAST(({swapped}) AS DECIMAL(38, 0))", dialect="duckdb")
    return node


def _never_null(node: exp.Expr) -> bool:
    if isinstance(node, exp.Literal):
        return True
    if isinstance(node, exp.Chr):
        return all(isinstance(e, exp.Literal) for e in node.expressions)
    if isinstance(node, exp.Coalesce):
        return any(_never_null(e) for e in [node.this, *node.expressions])
    return False


def _concat_of_never_null(node: exp.Expr) -> exp.Expr:
    """`a || b || c` (and CONCAT, which sqlglot reads as the same) is NULL when any part is (Snowflake's docs:
    CONCAT, `||`); DuckDB's `||` is too, but builds each step's string, while its `concat(...)` builds one and
    takes half the time. `concat` skips NULLs instead, so only a chain whose every part cannot be NULL (a literal,
    CHR of one, a COALESCE ending in one, as the content check's row hash is) becomes one: the same value."""
    if not isinstance(node, exp.DPipe | exp.Concat):
        return node
    parts: list[exp.Expr] = []
    pending: list[exp.Expr] = [node]
    while pending:
        part = pending.pop()
        if isinstance(part, exp.DPipe):
            pending += [part.expression, part.this]
        elif isinstance(part, exp.Concat) and part is node:
            pending += reversed(part.expressions)
        else:
            parts.append(part)
    if not all(_never_null(p) for p in parts):
        return node
    return exp.Anonymous(this="concat", expressions=[p.copy() for p in parts])


def _geography_as_text(node: exp.Expr) -> exp.Expr:
    """GEOGRAPHY / GEOMETRY are stored as WKT text here, so ST_ASWKT(x) is x itself."""
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        args = [node.this] if node.this is not None and not isinstance(node, exp.Anonymous) else node.expressions
        if name.upper() in _AS_TEXT_FUNCTIONS and len(args) == 1 and isinstance(args[0], exp.Expr):
            return exp.cast(args[0].copy(), "VARCHAR")
    return node


def _patch_fakesnow_geography() -> None:
    """Teach fakesnow's transform chain that GEOGRAPHY is WKT text here (ST_ASWKT and friends)."""
    original = FakeSnowflakeCursor._transform
    if getattr(original, "_geography_as_text", False):
        return

    def transform(self: FakeSnowflakeCursor, expression: exp.Expr, params: Any) -> exp.Expr:
        expression = expression.transform(_geography_as_text, copy=False).transform(_seq4_with_gaps, copy=False)
        expression = expression.transform(_md5_numbers, copy=False).transform(_concat_of_never_null, copy=False)
        expression = _with_row_policies(expression, self._conn.database, self._conn.schema)
        expression = twins.resolve_tables(expression, self._conn._duck_conn, self._conn.database, self._conn.schema)
        transformed: exp.Expr = original(self, expression, params)
        return transformed

    transform._geography_as_text = True  # type: ignore[attr-defined]
    FakeSnowflakeCursor._transform = transform  # type: ignore[method-assign]
