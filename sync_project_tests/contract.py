"""`make test-snowflake`: the Snowflake contract tests against a real account, or a note on how to set one up.

Runs `test_snowflake_contract.py` with SYNC_CONTRACT_BACKEND=account, so the tests connect through the
resources' account code path (the SNOWFLAKE_* variables). They create one scratch schema with a unique
name in SNOWFLAKE_DATABASE and drop it at the end, also when a test fails. Without SNOWFLAKE_ACCOUNT
nothing runs and the exit code is 0: CI has no account.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sync_project import settings as env

HOW_TO = f"""No Snowflake account configured: nothing run.

To hold the sync to its contract on a real account, set (values are read, never printed):
  {env.SNOWFLAKE_ACCOUNT}    the account identifier (orgname-accountname)
  {env.SNOWFLAKE_USER}       a user whose role may CREATE SCHEMA in the database
  {env.SNOWFLAKE_WAREHOUSE}  a warehouse the role may use (the tests run small queries and unloads)
  {env.SNOWFLAKE_DATABASE}   the database to create the scratch schema SYNC_CONTRACT_<time>_<id> in
and one credential: {env.SNOWFLAKE_PRIVATE_KEY} or {env.SNOWFLAKE_PRIVATE_KEY_PATH} (with
{env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE} if encrypted), {env.SNOWFLAKE_TOKEN} (a programmatic access
token), or {env.SNOWFLAKE_PASSWORD}; optionally {env.SNOWFLAKE_ROLE}. Then run: make test-snowflake
"""

BACKEND = "SYNC_CONTRACT_BACKEND"  # "account": the tests connect with the SNOWFLAKE_* variables
CREDENTIALS = (env.SNOWFLAKE_PRIVATE_KEY, env.SNOWFLAKE_PRIVATE_KEY_PATH, env.SNOWFLAKE_TOKEN, env.SNOWFLAKE_PASSWORD)
REQUIRED = (env.SNOWFLAKE_USER, env.SNOWFLAKE_WAREHOUSE, env.SNOWFLAKE_DATABASE)


def main(argv: list[str]) -> int:
    if not os.environ.get(env.SNOWFLAKE_ACCOUNT, "").strip():
        print(HOW_TO)
        return 0
    missing = [name for name in REQUIRED if not os.environ.get(name, "").strip()]
    if not any(os.environ.get(name, "").strip() for name in CREDENTIALS):
        missing.append(" or ".join(CREDENTIALS))
    if missing:
        print(f"{env.SNOWFLAKE_ACCOUNT} is set but these are not: {', '.join(missing)}\n\n{HOW_TO}", file=sys.stderr)
        return 2
    os.environ[BACKEND] = "account"
    module = Path(__file__).with_name("test_snowflake_contract.py")
    return int(pytest.main([str(module), "-p", "no:cacheprovider", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
