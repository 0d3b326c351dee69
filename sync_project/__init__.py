"""Mirror Snowflake tables into DuckDB, one Dagster partition per table."""

import warnings

# Beta features the project uses knowingly: one run per partition in backfills, the sensors' owners (which
# Dagster itself passes), and code references on the asset. Without this, every command and run log starts
# with Dagster's BetaWarning.
for _beta in (
    r"Parameter `(backfill_policy|owners)` .* is currently in beta",
    r"Function `with_source_code_references` is currently in beta",
    r"Class `(LocalFileCodeReference|CodeReferencesMetadataValue)` is currently in beta",
):
    warnings.filterwarnings("ignore", message=_beta)
