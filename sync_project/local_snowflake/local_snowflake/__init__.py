"""An embedded Snowflake: fakesnow's HTTP server, extended with what a Snowflake-to-DuckDB sync needs.

A program of its own, installed into its own environment (`.local/snowflake-env`) and run as
`python -m local_snowflake`. It imports nothing of sync_project: the product starts it and talks to it over
HTTP, through snowflake-connector-python, exactly as to Snowflake (sync_project/embedded_snowflake.py).
"""
