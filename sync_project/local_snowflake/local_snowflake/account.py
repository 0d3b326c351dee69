"""The emulator's one account: its built-in user (a person with a password) and its one warehouse."""

LOCAL_ACCOUNT = "local"
LOCAL_USER = "local"
LOCAL_PASSWORD = "local"  # noqa: S105 - the built-in user's password on the emulator; not a secret
LOCAL_WAREHOUSE = "COMPUTE_WH"  # the emulator's one warehouse (a new account's default name)
