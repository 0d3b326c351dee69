"""Fault injection: make the next N requests of a kind fail or stall, so retries, resume and cleanup are proven.

Kinds are `login`, `query` (any statement), a statement kind the emulator
recognises (`unload`, `get`, `list`, `remove`, `desc_table`, `show_tables`,
`create_stage`, `drop_stage`, `alter_session`, `use_warehouse`), or `download`:
one request for a file on the stage's cloud storage (a presigned URL), with the
modes `truncate` (headers and half the bytes, then the connection drops),
`expired` (GCS's 400 ExpiredToken), `http_error` and `stall`.
`hold` keeps the request waiting until the test releases it (`release_faults`), `seconds` at most: a test
knows its sync is inside that request (the fault has fired) and can act then, with no race on timing.
Tests drive it over HTTP (`POST /_local/faults`, `sync_project_tests/emulator_controls.py`) because the server
runs in another process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import anyio

FaultMode = Literal["http_error", "sql_error", "stall", "hold", "truncate", "expired"]


@dataclass
class Fault:
    kind: str
    mode: FaultMode = "sql_error"
    count: int = 1
    status: int = 503  # http_error
    errno: int = 603  # sql_error: Snowflake's "SQL execution internal error", a transient one
    message: str = "SQL execution internal error: injected fault"
    seconds: float = 5.0  # stall; hold: the longest it waits for its release
    after: int = 0  # requests of the kind that pass untouched first (the third GET of a sync: after=2)


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # kinds whose held request a cancel ended
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.fired.clear()
            self.cancelled.clear()
            self.released.clear()

    def take(self, *kinds: str) -> Fault | None:
        """Consume one pending fault of any of these kinds, if there is one."""
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.count > 0:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.count -= 1
                    self.fired.append(fault.kind)
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def release(self) -> None:
        self.released.set()

    async def delay(self, fault: Fault, cancelled: threading.Event | None = None) -> bool:
        """A stall's sleep, or a hold's wait for its release (polled: the server's loop stays free). True if the
        statement was cancelled meanwhile (a held one stops waiting at once)."""
        cancelled = cancelled or threading.Event()
        if fault.mode == "stall":
            await anyio.sleep(fault.seconds)
        elif fault.mode == "hold":
            deadline = time.monotonic() + fault.seconds
            while not self.released.is_set() and not cancelled.is_set() and time.monotonic() < deadline:
                await anyio.sleep(0.05)
        if cancelled.is_set():
            with self._lock:
                self.cancelled.append(fault.kind)
        return cancelled.is_set()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pending": [asdict(f) for f in self.faults],
                "fired": list(self.fired),
                "cancelled": list(self.cancelled),
            }
