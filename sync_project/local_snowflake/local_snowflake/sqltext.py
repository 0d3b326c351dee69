"""Small, quote-aware pieces of Snowflake SQL text that sqlglot does not parse for us.

Stage references (`@db."Sch".stage/path/`), `KEY = value` option lists and
balanced parentheses: enough to recognise the stage commands the emulator
answers itself, without a SQL parser of our own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from snowflake.connector.errors import ProgrammingError


def sql_error(message: str, errno: int = 1003, sqlstate: str = "42000") -> ProgrammingError:
    """A Snowflake-shaped compilation error the server turns into an error response."""
    return ProgrammingError(msg=message, errno=errno, sqlstate=sqlstate)


def normalise_identifier(part: str) -> str:
    """Snowflake resolution: `"x"` keeps its case (with `""` unescaped), bare `x` is upper-cased."""
    if len(part) >= 2 and part.startswith('"') and part.endswith('"'):
        return part[1:-1].replace('""', '"')
    return part.upper()


def split_dotted(text: str) -> tuple[list[str], str]:
    """Split a leading dotted identifier (`a."b.c".d`) off `text`; return its raw parts and the rest."""
    parts: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == '"':
            j = i + 1
            while True:
                j = text.find('"', j)
                if j < 0:
                    raise sql_error("SQL compilation error:\nunterminated quoted identifier")
                if j + 1 < len(text) and text[j + 1] == '"':
                    j += 2
                    continue
                break
            parts.append(text[i : j + 1])
            i = j + 1
        else:
            m = re.match(r"[A-Za-z_$][A-Za-z0-9_$]*", text[i:])
            if not m:
                break
            parts.append(m.group(0))
            i += m.end()
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        break
    return parts, text[i:]


@dataclass(frozen=True)
class ObjectName:
    database: str
    schema: str
    name: str

    def display(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"


USER_STAGE_DATABASE = USER_STAGE_SCHEMA = "~"  # a user stage's "database" and "schema": its name is the user


def user_stage(user: str) -> ObjectName:
    """The user stage `@~` of one user."""
    return ObjectName(USER_STAGE_DATABASE, USER_STAGE_SCHEMA, user)


def is_user_stage(stage: ObjectName) -> bool:
    return stage.database == USER_STAGE_DATABASE and stage.schema == USER_STAGE_SCHEMA


def string_literal(text: str, start: int) -> tuple[str, int]:
    """The single-quoted SQL string opening at `text[start]` (`\\x` and `''` escapes) and the index past it."""
    chars: list[str] = []
    j = start + 1
    while j < len(text):
        if text[j] == "\\" and j + 1 < len(text):
            chars.append(text[j + 1])
            j += 2
        elif text[j] == "'" and text[j + 1 : j + 2] == "'":
            chars.append("'")
            j += 2
        elif text[j] == "'":
            return "".join(chars), j + 1
        else:
            chars.append(text[j])
            j += 1
    raise sql_error("SQL compilation error:\nunterminated string literal")


def resolve_name(parts: list[str], database: str | None, schema: str | None) -> ObjectName:
    """Fill in the session's database and schema for a one- or two-part name."""
    names = [normalise_identifier(p) for p in parts]
    if len(names) == 3:
        return ObjectName(*names)
    if len(names) == 2 and database:
        return ObjectName(database, names[0], names[1])
    if len(names) == 1 and database and schema:
        return ObjectName(database, schema, names[0])
    raise sql_error(
        "SQL compilation error:\nCannot resolve the object name without a current database and schema.",
        errno=90105,
        sqlstate="22000",
    )


def resolve_schema(parts: list[str], database: str | None) -> tuple[str, str]:
    """(database, schema) for a one- or two-part schema name."""
    names = [normalise_identifier(p) for p in parts]
    if len(names) == 2:
        return names[0], names[1]
    if len(names) == 1 and database:
        return database, names[0]
    raise sql_error("SQL compilation error:\nCannot resolve the schema without a current database.", errno=90105)


@dataclass(frozen=True)
class StageRef:
    stage: ObjectName
    path: str  # path inside the stage, "" for its root; may end with "/"


# What an unquoted stage path may hold; anything else (spaces, quotes, ...) needs the whole reference in single
# quotes, as Snowflake's COPY INTO <location> / GET / LIST documentation says.
_UNQUOTED_PATH = re.compile(r"[A-Za-z0-9_\-./=]*")


def parse_stage_ref(
    text: str, database: str | None, schema: str | None, user: str | None = None
) -> tuple[StageRef, str]:
    """Parse `@name[/path]` or `@~[/path]` at the start of `text` (maybe single-quoted); return it and the rest."""
    text = text.lstrip()
    quoted = text.startswith("'")
    if quoted:
        end = text.find("'", 1)
        if end < 0:
            raise sql_error("SQL compilation error:\nunterminated stage reference")
        body, rest = text[1:end], text[end + 1 :]
    else:
        body, rest = text, ""
    if not body.startswith("@"):
        raise sql_error(f"SQL compilation error:\n{body.split()[0] if body else body!r} does not start with @")
    if body.startswith("@~"):
        parts, after = ["~"], body[2:]
    else:
        parts, after = split_dotted(body[1:])
    if not parts:
        raise sql_error("SQL compilation error:\nmissing stage name after @")
    path = ""
    if after.startswith("/"):
        m = re.match(r"/(\S*)" if not quoted else r"/(.*)", after, re.DOTALL)
        assert m
        path = m.group(1)
        after = after[m.end() :]
        if not quoted and not _UNQUOTED_PATH.fullmatch(path):
            raise sql_error(
                f"SQL compilation error:\nsyntax error line 1 unexpected '{path}'. A stage path with special "
                "characters must be enclosed in single quotes.",
                errno=1003,
            )
    if not quoted:
        rest = after
    elif after.strip():
        raise sql_error("SQL compilation error:\nunexpected text in stage reference")
    if parts[0] == "~":
        if user is None:
            raise sql_error("SQL compilation error:\nthe user stage needs a signed-in user")
        return StageRef(user_stage(user), path), rest
    if parts[0].startswith("%"):
        raise sql_error("SQL compilation error:\ntable stages are not supported by the local Snowflake")
    return StageRef(resolve_name(parts, database, schema), path), rest


def matching_paren(text: str, start: int) -> int:
    """Index of the `)` that closes the `(` at `start`, skipping quoted strings and identifiers."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c in ("'", '"'):
            j = i + 1
            while j < len(text):
                if text[j] == "\\" and c == "'":
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < len(text) and text[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise sql_error("SQL compilation error:\nunbalanced parentheses")


OptionValue = str | int | bool | dict[str, "OptionValue"]


def parse_options(text: str) -> dict[str, OptionValue]:
    """Parse `KEY = value KEY2 = (K = v ...)`: keys upper-cased, strings unquoted, numbers and booleans typed."""
    options: dict[str, OptionValue] = {}
    i = 0
    text = text.strip().rstrip(";")
    while i < len(text):
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=?\s*", text[i:])
        if not m or not m.group(0).strip():
            if text[i:].strip():
                raise sql_error(f"SQL compilation error:\nsyntax error near {text[i:].strip()[:40]!r}")
            break
        key = m.group(1).upper()
        i += m.end()
        if i < len(text) and text[i] == "(":
            end = matching_paren(text, i)
            options[key] = parse_options(text[i + 1 : end])
            i = end + 1
            continue
        if i < len(text) and text[i] == "'":
            options[key], i = string_literal(text, i)
            continue
        vm = re.match(r"[^\s()]+", text[i:])
        raw = vm.group(0) if vm else ""
        i += len(raw)
        if raw.upper() in ("TRUE", "FALSE"):
            options[key] = raw.upper() == "TRUE"
        elif re.fullmatch(r"-?\d+", raw):
            options[key] = int(raw)
        else:
            options[key] = raw.upper()
    return options


def _quoted_spans(sql: str) -> list[tuple[int, int]]:
    """Where the double-quoted identifiers of a statement are (quotes included), skipping string literals."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(sql):
        c = sql[i]
        if c == "'":
            _, i = string_literal(sql, i)
            continue
        if c == '"':
            end = i + 1
            while end < len(sql):
                if sql[end] == '"' and sql[end + 1 : end + 2] == '"':
                    end += 2
                    continue
                if sql[end] == '"':
                    break
                end += 1
            spans.append((i, end + 1))
            i = end + 1
            continue
        i += 1
    return spans


def quoted_identifiers(sql: str) -> list[str]:
    """The double-quoted identifiers of a statement (`""` unescaped), skipping string literals."""
    return [sql[start + 1 : end - 1].replace('""', '"') for start, end in _quoted_spans(sql)]


def upper_quoted_identifiers(sql: str) -> str:
    """The statement as QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE reads it: every quoted identifier upper-cased."""
    text, last = [], 0
    for start, end in _quoted_spans(sql):
        text += [sql[last:start], sql[start:end].upper()]
        last = end
    return "".join([*text, sql[last:]])


def strip_comments(sql: str) -> str:
    """Drop leading `--` and `/* */` comments so statement keywords can be matched."""
    text = sql.strip()
    while True:
        if text.startswith("--"):
            nl = text.find("\n")
            text = "" if nl < 0 else text[nl + 1 :].lstrip()
        elif text.startswith("/*"):
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2 :].lstrip()
        else:
            return text.rstrip().rstrip(";").rstrip()
