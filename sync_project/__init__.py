"""Mirror Snowflake tables into DuckDB, one Dagster partition per table."""

import warnings

# Beta parameters the project uses knowingly (one run per partition in backfills; the sensors' owners, which
# Dagster itself passes). Without this, every command and run log starts with Dagster's BetaWarning.
warnings.filterwarnings("ignore", message=r"Parameter `(backfill_policy|owners)` .* is currently in beta")
