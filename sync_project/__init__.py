"""Mirror Snowflake tables into DuckDB, one Dagster partition per table."""

import warnings

# Beta features the project uses knowingly: one run per partition in backfills, the sensors' owners (which
# Dagster itself passes), and code references on the asset. Without this, every command and run log starts
# with Dagster's BetaWarning.
# Partitioned asset checks are a preview feature; we rely on them knowingly (a check's history per table).
KNOWN_WARNINGS = (
    r"Parameter `(backfill_policy|owners)` .* is currently in beta",
    r"Function `with_source_code_references` is currently in beta",
    r"Class `(LocalFileCodeReference|CodeReferencesMetadataValue)` is currently in beta",
    r".*partitions_def on an AssetCheckSpec.*",
)


def ignore_known_warnings() -> None:
    """Filter the warnings of features we use knowingly (again inside a `catch_warnings` block, as pytest's)."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


ignore_known_warnings()


def __getattr__(name: str) -> object:
    """`sync_project.SnowflakeMirrorComponent`, as `defs.yaml` and `dg scaffold defs` name it; imported on first
    use, so `sync-project` commands that never build definitions do not pay for Dagster's import."""
    if name == "SnowflakeMirrorComponent":
        from sync_project.component import SnowflakeMirrorComponent

        return SnowflakeMirrorComponent
    raise AttributeError(f"module 'sync_project' has no attribute {name!r}")


def __dir__() -> list[str]:
    return ["SnowflakeMirrorComponent"]  # what `dg list components` finds through the registry entry point
