"""`sync-project`: the table chores Dagster has no verb for, and the local Snowflake.

Works against the same DAGSTER_HOME as the UI (default `.local/dagster`). Exit codes scripts can rely
on: 0 ok, 1 failure (the message says what to do), 2 usage. One module per kind of command.
"""

from sync_project.cli import local, syncs, tables  # noqa: F401 - each adds its commands to `main`
from sync_project.cli.common import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
