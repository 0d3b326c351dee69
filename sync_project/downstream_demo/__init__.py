"""The demo's downstream of the mirror, a code location of its own: a Python asset and a dbt model over ALL_TYPES.

Its own code location because dagster-dbt's import costs about 2 s (`python -X importtime -c "import
dagster_dbt"`), which every sync run process would otherwise pay: a run process loads its whole code location.
Dagster resolves the dependency on the mirror's partition across locations, and this location's automation
sensor runs the two assets once after ALL_TYPES syncs.
"""
