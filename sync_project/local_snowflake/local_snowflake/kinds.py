"""Which statement a SQL text is: the kinds the emulator answers itself, by their leading words; everything
else goes to fakesnow. `statements.HANDLERS` maps each kind to its handler."""

from __future__ import annotations

import re

from local_snowflake.sqltext import strip_comments

_F = re.IGNORECASE | re.DOTALL
# One name: double-quoted (quotes doubled inside) or bare.
_NAME = r'"(?:[^"]|"")+"|[A-Za-z_][\w$]*'
STATEMENTS: list[tuple[str, re.Pattern[str]]] = [
    ("alter_session", re.compile(r"ALTER\s+SESSION\s+(?P<verb>SET|UNSET)\s+(?P<rest>.*)", _F)),
    ("alter_account", re.compile(r"ALTER\s+ACCOUNT\s+(?P<verb>SET|UNSET)\s+(?P<rest>.*)", _F)),
    (
        "alter_user",
        re.compile(
            rf"ALTER\s+USER\s+(IF\s+EXISTS\s+)?(?P<user>{_NAME})\s+(?P<verb>SET|UNSET)\s+(?P<rest>.*)",
            _F,
        ),
    ),
    (
        "alter_warehouse",
        re.compile(
            rf"ALTER\s+WAREHOUSE\s+(IF\s+EXISTS\s+)?(?P<warehouse>{_NAME})\s+"
            r"(?P<verb>SET|UNSET)\s+(?P<rest>.*)",
            _F,
        ),
    ),
    (
        "show_parameters",
        re.compile(
            r"SHOW\s+PARAMETERS(\s+LIKE\s+'(?P<like>[^']*)')?"
            rf"(\s+IN\s+(?P<scope>SESSION|ACCOUNT|USER|WAREHOUSE)(\s+(?P<user>{_NAME}))?)?",
            _F,
        ),
    ),
    (
        "create_row_access_policy",
        re.compile(
            r"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?ROW\s+ACCESS\s+POLICY\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<rest>.*)",
            _F,
        ),
    ),
    (
        "alter_table_row_access",
        re.compile(
            r"ALTER\s+TABLE\s+(IF\s+EXISTS\s+)?(?P<table>.+?)\s+(?P<verb>ADD|DROP)\s+ROW\s+ACCESS\s+POLICY\s+"
            r"(?P<rest>.*)",
            _F,
        ),
    ),
    (
        "policy_references",
        re.compile(
            r"SELECT\s+(?P<columns>.+?)\s+FROM\s+TABLE\s*\(\s*(?P<database>\S+?)\.INFORMATION_SCHEMA\."
            r"POLICY_REFERENCES\s*\((?P<rest>.*)\)\s*\)",
            _F,
        ),
    ),
    ("use_warehouse", re.compile(r"USE\s+WAREHOUSE\s+(?P<rest>.*)", _F)),
    ("cancel_all_queries", re.compile(r"SELECT\s+SYSTEM\$CANCEL_ALL_QUERIES\(\s*'?(?P<session>\d+)'?\s*\)", _F)),
    (
        "session_context",
        re.compile(r"SELECT\s+(?P<rest>CURRENT_\w+\(\s*\)(\s*,\s*CURRENT_\w+\(\s*\))*)\s*;?", _F),
    ),
    (
        "create_stage",
        re.compile(
            r"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?P<temp>TEMP\s+|TEMPORARY\s+)?STAGE\s+"
            r"(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<rest>.*)",
            _F,
        ),
    ),
    ("drop_stage", re.compile(r"DROP\s+STAGE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<rest>.*)", _F)),
    ("list", re.compile(r"(LIST|LS)\s+(?P<rest>.*)", _F)),
    ("remove", re.compile(r"(REMOVE|RM)\s+(?P<rest>.*)", _F)),
    ("get", re.compile(r"GET\s+(?P<rest>.*)", _F)),
    ("unload", re.compile(r"COPY\s+INTO\s+(?P<rest>'?@.*)", _F)),
    ("desc_table", re.compile(r"DESC(RIBE)?\s+TABLE\s+(?P<rest>.*)", _F)),
    ("desc_stage", re.compile(r"DESC(RIBE)?\s+STAGE\s+(?P<rest>.*)", _F)),
    ("create_table", re.compile(r"CREATE\s+(OR\s+REPLACE\s+)?(TRANSIENT\s+)?TABLE\s+(?P<rest>.*)", _F)),
    ("show_tables", re.compile(r"SHOW\s+(TERSE\s+)?TABLES\b(?P<rest>.*)", _F)),
    ("show_stages", re.compile(r"SHOW\s+STAGES(\s+LIKE\s+'(?P<like>[^']*)')?(\s+IN\s+(SCHEMA\s+)?(?P<rest>.*))?", _F)),
]


def classify(sql: str) -> tuple[str | None, re.Match[str] | None]:
    text = strip_comments(sql)
    for kind, pattern in STATEMENTS:
        if m := pattern.fullmatch(text):
            return kind, m
    return None, None
