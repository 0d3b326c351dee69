"""`python -m sync_project.local_snowflake`: the server itself, run from its own environment (environment.py).

People start it with `sync-project local-snowflake`, which checks the port and hands over to this.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sync_project.local_snowflake import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sync_project.local_snowflake", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--demo-rows", type=int, default=None)
    args = parser.parse_args()
    serve(args.data_dir, args.host, args.port, args.demo_rows)


if __name__ == "__main__":
    main()
