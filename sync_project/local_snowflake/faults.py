"""Fault injection: make the next N requests of a kind fail or stall, so retries, resume and cleanup are proven.

Kinds are `login`, `query` (any statement), a statement kind the emulator
recognises (`unload`, `get`, `list`, `remove`, `desc_table`, `show_tables`,
`create_stage`, `drop_stage`, `alter_session`, `use_warehouse`), or `download`:
one request for a file on the stage's cloud storage (a presigned URL), with the
modes `truncate` (headers and half the bytes, then the connection drops),
`expired` (GCS's 400 ExpiredToken), `http_error` and `stall`.
Tests drive it over HTTP (`POST /_local/faults`) because the server runs in
another process.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FaultMode = Literal["http_error", "sql_error", "stall", "truncate", "expired"]


@dataclass
class Fault:
    kind: str
    mode: FaultMode = "sql_error"
    count: int = 1
    status: int = 503  # http_error
    errno: int = 603  # sql_error: Snowflake's "SQL execution internal error", a transient one
    message: str = "SQL execution internal error: injected fault"
    seconds: float = 5.0  # stall


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.fired.clear()

    def take(self, *kinds: str) -> Fault | None:
        """Consume one pending fault of any of these kinds, if there is one."""
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.count > 0:
                    fault.count -= 1
                    self.fired.append(fault.kind)
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"pending": [asdict(f) for f in self.faults], "fired": list(self.fired)}


def _request(base_url: str, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - our own server on loopback
        f"{base_url}/_local/faults", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
        return result


def inject_fault(base_url: str, kind: str, **options: Any) -> None:
    """Ask a running local Snowflake to fail the next request(s) of `kind`."""
    _request(base_url, "POST", {"kind": kind, **options})


def clear_faults(base_url: str) -> None:
    _request(base_url, "DELETE")


def fault_state(base_url: str) -> dict[str, Any]:
    return _request(base_url, "GET")
