"""How the project shows values to people in the UI and the CLI: text tables and readable sizes."""

from collections.abc import Sequence

import dagster as dg


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> dg.TableMetadataValue:
    """A metadata table of text cells: Dagster shows them as given, without plotting or reformatting."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in columns])
    records = [dg.TableRecord(dict(zip(columns, row, strict=True))) for row in rows]
    return dg.MetadataValue.table(records, schema)


def human_bytes(size: int | None) -> str:
    """1,234,567 -> '1.2 MiB' (None -> '-'), as people read sizes."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"
