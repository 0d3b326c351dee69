"""`python -m local_snowflake`: the server in the foreground, until interrupted.

People start it with `sync-project local-snowflake` (or `make demo`), which checks the port, runs this from the
emulator's own environment and creates the demo tables through the connector once it answers.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def serve(data_dir: Path, host: str, port: int) -> None:
    import uvicorn

    from local_snowflake.server import LocalSnowflake

    emulator = LocalSnowflake(data_dir)
    uvicorn.Server(uvicorn.Config(emulator.app(), host=host, port=port, log_level="warning")).run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local_snowflake", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.data_dir, args.host, args.port)


if __name__ == "__main__":
    main()
