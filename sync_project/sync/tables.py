"""TableRef: the one way a table name reaches SQL or a file path.

Partition keys are user input (the UI lets anyone type one), so every
identifier is parsed and validated here, double-quoted for SQL with embedded
quotes doubled, and mapped to a file name that cannot leave its folder.

Key format: `SCHEMA.TABLE`, each part exactly as Snowflake stores it (as SHOW
TABLES prints it: `WORKSPACE_833213390.data` is the lower-case table "data").
A part containing `.` or `"` is written double-quoted with `""` for a quote,
so every table has exactly one key.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

from sync_project.sync.errors import InvalidTableNameError

MAX_IDENTIFIER_LENGTH = 255  # Snowflake's limit
MAX_FOLDER_NAME = 120


def _check_part(part: str, what: str, key: str) -> None:
    if not part:
        raise InvalidTableNameError(f"{what} name is empty in {key!r}; write keys as SCHEMA.TABLE")
    if len(part) > MAX_IDENTIFIER_LENGTH:
        raise InvalidTableNameError(
            f"{what} name in {key[:60]!r}... is {len(part)} characters; Snowflake allows {MAX_IDENTIFIER_LENGTH}"
        )
    bad = [c for c in part if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad:
        raise InvalidTableNameError(
            f"{what} name {part!r} contains control or unassigned characters {bad!r}; "
            "rename the table in Snowflake or pick another one"
        )
    if "/" in part or "\\" in part or part.strip(".") == "":
        raise InvalidTableNameError(
            f"{what} name {part!r} looks like a path ('/', '\\' or only dots); such tables are refused"
        )


def _quote_key_part(part: str) -> str:
    return '"' + part.replace('"', '""') + '"' if ("." in part or '"' in part) else part


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted string opening at `text[start]` (a doubled quote is one quote).

    Returns its unescaped content and the index just past the closing quote;
    ValueError if it never closes.
    """
    quote = text[start]
    chars: list[str] = []
    j = start + 1
    while j < len(text):
        if text[j] != quote:
            chars.append(text[j])
            j += 1
        elif j + 1 < len(text) and text[j + 1] == quote:
            chars.append(quote)
            j += 2
        else:
            return "".join(chars), j + 1
    raise ValueError(f"unterminated {quote} in {text[:80]!r}")


def _split_key(key: str) -> list[str]:
    parts: list[str] = []
    i = 0
    while True:
        if i < len(key) and key[i] == '"':
            try:
                part, i = read_quoted(key, i)
            except ValueError:
                raise InvalidTableNameError(f"unterminated quote in partition key {key!r}") from None
            parts.append(part)
            if i < len(key) and key[i] != ".":
                raise InvalidTableNameError(f"unexpected text after a quoted name in partition key {key!r}")
        else:
            end = key.find(".", i)
            part = key[i:] if end < 0 else key[i:end]
            if '"' in part:
                raise InvalidTableNameError(
                    f"partition key {key!r}: a name with a quote must be written in double quotes, quotes doubled"
                )
            parts.append(part)
            i = len(key) if end < 0 else end
        if i >= len(key):
            return parts
        i += 1  # the dot
        if i == len(key):
            parts.append("")
            return parts


def sql_string(text: object) -> str:
    """A single-quoted SQL string literal for Snowflake or DuckDB (both use '' for a quote)."""
    return "'" + str(text).replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """Double-quote an identifier for Snowflake or DuckDB SQL (both use "" for a quote)."""
    return '"' + name.replace('"', '""') + '"'


def safe_file_part(text: str) -> str:
    """Keep [A-Za-z0-9-]; write every other byte as _HH. Injective, and never '.', '..', '/', '%' or a space."""
    out: list[str] = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


@dataclass(frozen=True, order=True)
class TableRef:
    """A Snowflake table: database, schema and name exactly as Snowflake stores them."""

    database: str
    schema: str
    name: str

    def __post_init__(self) -> None:
        key = f"{self.schema}.{self.name}"
        _check_part(self.database, "database", key)
        _check_part(self.schema, "schema", key)
        _check_part(self.name, "table", key)

    @classmethod
    def from_key(cls, key: str, database: str) -> TableRef:
        """Parse a partition key (`SCHEMA.TABLE`, see module docstring)."""
        if not isinstance(key, str):
            raise InvalidTableNameError(f"partition key must be text, got {type(key).__name__}")
        parts = _split_key(key)
        if len(parts) != 2:
            raise InvalidTableNameError(
                f'partition key {key[:80]!r} must be SCHEMA.TABLE; quote a name that contains a dot: SCHEMA."my.table"'
            )
        return cls(database, parts[0], parts[1])

    @property
    def key(self) -> str:
        """The canonical partition key."""
        return f"{_quote_key_part(self.schema)}.{_quote_key_part(self.name)}"

    @property
    def snowflake_sql(self) -> str:
        """`"DB"."SCHEMA"."TABLE"` for Snowflake SQL."""
        return ".".join(quote_identifier(p) for p in (self.database, self.schema, self.name))

    # The mirror keeps Snowflake's names exactly (quoted in SQL), so DuckDB's schema and table are Snowflake's.
    @property
    def duckdb_schema(self) -> str:
        return self.schema

    @property
    def duckdb_table(self) -> str:
        return self.name

    @property
    def duckdb_sql(self) -> str:
        """`"SCHEMA"."TABLE"` in the DuckDB file."""
        return f"{quote_identifier(self.duckdb_schema)}.{quote_identifier(self.duckdb_table)}"

    @property
    def duckdb_relation(self) -> str:
        """The relation's name as people read it (for metadata)."""
        return f"{self.duckdb_schema}.{self.duckdb_table}"

    @property
    def folder_name(self) -> str:
        """A file name for this table: only [A-Za-z0-9_.-], bounded length, distinct for distinct tables."""
        text = f"{safe_file_part(self.database)}.{safe_file_part(self.schema)}.{safe_file_part(self.name)}"
        if len(text) <= MAX_FOLDER_NAME:
            return text
        digest = hashlib.sha256("\x00".join((self.database, self.schema, self.name)).encode()).hexdigest()[:16]
        return f"{text[: MAX_FOLDER_NAME - 17]}-{digest}"

    def __str__(self) -> str:
        return f"{self.database}.{self.key}"
