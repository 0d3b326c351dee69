"""`python -m sync_project.local_snowflake`: the server itself, run from its own environment (environment.py).

People start it with `sync-project local-snowflake`, which checks the port and hands over to this.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sync_project.local_snowflake import check_port_free, connection_settings


def serve(data_dir: Path, host: str, port: int, demo_rows: int | None = None) -> None:
    """Run the server in the foreground until interrupted."""
    import snowflake.connector
    import uvicorn

    from sync_project.local_snowflake.demo import create_demo_tables
    from sync_project.local_snowflake.server import LocalSnowflake

    check_port_free(host, port, "the embedded Snowflake")
    emulator = LocalSnowflake(data_dir)
    config = uvicorn.Config(emulator.app(), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    if demo_rows is None:
        server.run()
        return

    import threading

    emulator.ready = False  # /_local/health says so until the demo tables exist
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    started = time.monotonic()
    with snowflake.connector.connect(**connection_settings(host, port)) as conn:
        counts = create_demo_tables(conn.cursor(), demo_rows)
    emulator.ready = True
    print(f"demo data ready in {time.monotonic() - started:.1f}s: {counts}", flush=True)
    thread.join()


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
