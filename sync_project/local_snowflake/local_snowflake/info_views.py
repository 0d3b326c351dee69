"""The views that list tables and columns (SHOW TABLES, INFORMATION_SCHEMA.TABLES and .COLUMNS), reading the
emulator's true figures (table_meta.py) and printing names as Snowflake does (twins.py)."""

from __future__ import annotations

from local_snowflake import twins
from local_snowflake.table_meta import META

# fakesnow's SHOW TABLES view prints 0 rows, 0 bytes and 1970; this one reads true figures.
SHOW_TABLES_VIEW_SQL = f"""
CREATE OR REPLACE VIEW _fs_global._fs_information_schema._fs_show_tables AS
SELECT
    coalesce(s.created_on, to_timestamp(0)::TIMESTAMPTZ) AS created_on,
    {twins.DECODE_SQL.format("t.table_name")} AS name, 'TABLE' AS kind, t.table_catalog AS database_name,
    t.table_schema AS schema_name, '' AS comment, '' AS cluster_by,
    coalesce(s.row_count, 0) AS rows, coalesce(s.bytes, 0) AS bytes,
    'SYSADMIN' AS owner, 1 AS retention_time, 'OFF' AS automatic_clustering,
    'OFF' AS change_tracking, 'OFF' AS search_optimization,
    NULL AS search_optimization_progress, NULL AS search_optimization_bytes,
    'N' AS is_external, 'N' AS enable_schema_evolution, 'ROLE' AS owner_role_type,
    'N' AS is_event, NULL AS budget, 'N' AS is_hybrid, 'N' AS is_iceberg,
    'N' AS is_dynamic, 'N' AS is_immutable
FROM information_schema.tables t
LEFT JOIN {META}.main.table_stats s
  ON s.database_name = t.table_catalog AND s.schema_name = t.table_schema AND s.table_name = t.table_name
WHERE NOT (t.table_schema = '_fs_information_schema') AND t.table_type = 'BASE TABLE'
"""


def patch_fakesnow_info_schema() -> None:
    """Make fakesnow's per-database INFORMATION_SCHEMA.TABLES view read the emulator's statistics."""
    from string import Template

    from fakesnow import info_schema

    text = info_schema.SQL_CREATE_INFORMATION_SCHEMA_TABLES_VIEW.template
    if META in text:
        return
    replacements = {
        "create view if not exists": "create or replace view",
        'tables.table_name AS "TABLE_NAME"': f'{twins.DECODE_SQL.format("tables.table_name")} AS "TABLE_NAME"',
        'tables.estimated_size AS "ROW_COUNT"': 'coalesce(st.row_count, tables.estimated_size) AS "ROW_COUNT"',
        '0 AS "BYTES"': 'coalesce(st.bytes, 0) AS "BYTES"',
        'to_timestamp(0)::timestamptz AS "CREATED"': (
            'coalesce(st.created_on, to_timestamp(0)::timestamptz) AS "CREATED"'
        ),
        'to_timestamp(0)::timestamptz AS "LAST_ALTERED"': (
            'coalesce(st.last_altered, to_timestamp(0)::timestamptz) AS "LAST_ALTERED"'
        ),
        "from duckdb_tables tables\n": (
            f"from duckdb_tables tables\nleft join {META}.main.table_stats st on "
            "st.database_name = tables.database_name and st.schema_name = tables.schema_name "
            "and st.table_name = tables.table_name\n"
        ),
    }
    for old, new in replacements.items():
        if old not in text:
            raise RuntimeError(f"fakesnow's INFORMATION_SCHEMA.TABLES view changed; cannot patch {old!r}")
        text = text.replace(old, new)
    info_schema.SQL_CREATE_INFORMATION_SCHEMA_TABLES_VIEW = Template(text)
    columns = info_schema.SQL_CREATE_GLOBAL_INFORMATION_SCHEMA_COLUMNS_VIEW
    for old, new in {
        "create view if not exists": "create or replace view",
        "columns.table_name AS TABLE_NAME": f"{twins.DECODE_SQL.format('columns.table_name')} AS TABLE_NAME",
        "columns.column_name AS COLUMN_NAME": f"{twins.DECODE_SQL.format('columns.column_name')} AS COLUMN_NAME",
    }.items():
        if old not in columns:
            raise RuntimeError(f"fakesnow's INFORMATION_SCHEMA.COLUMNS view changed; cannot patch {old!r}")
        columns = columns.replace(old, new)
    info_schema.SQL_CREATE_GLOBAL_INFORMATION_SCHEMA_COLUMNS_VIEW = columns
