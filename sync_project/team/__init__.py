"""The team deployment: Dagster's Postgres storage, runs on Celery workers, the mirror in a DuckLake on Postgres.

Nothing here is imported by the definitions: the team profile is an instance (`dagster.yaml` in this folder),
the same code. A worker is `sync-project worker`; the launcher the daemon uses is `launcher.py`.
"""
