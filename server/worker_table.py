"""The status of every worker of ``asr-server --workers N``, shared so that any worker answers
``/healthz`` for all of them.

The parent creates a small file of one fixed-size record per worker slot (:class:`StatusTable`);
every worker maps it, writes its own record (pid, state, open sessions, sessions served, a
heartbeat) once a second and whenever it answers ``/healthz``, and reads the others' records to
answer. The parent marks a slot ``starting`` when it starts a worker and ``exited`` when one
dies. A record is a few bytes written in one copy; a reader that catches one half written sees
one stale field of one worker for one health check, which is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from . import http
from .config import ServerConfig
from .service import Service

STATES = ("empty", "starting", "loading", "ready", "draining", "error", "unavailable", "exited")
"""A slot's state; the service's own health statuses map onto them (:data:`FROM_SERVICE`)."""
FROM_SERVICE = {
    "loading": "loading",
    "ok": "ready",
    "draining": "draining",
    "error": "error",
}
"""Service health status -> state; any other status (a Triton pool that is down) is
``unavailable``."""
RECORD = struct.Struct("<iiiid")
"""pid, state (index into STATES), sessions open, sessions served, heartbeat (monotonic s)."""
HEARTBEAT_S = 1.0
STALE_S = 10.0
"""A live worker whose heartbeat is older than this is reported ``stalled``."""


@dataclass(frozen=True)
class SlotStatus:
    slot: int
    pid: int
    state: str
    sessions: int
    served: int
    heartbeat: float


class StatusTable:
    """One record per worker slot in a file mapped by every process."""

    def __init__(self, path: Path, slots: int, *, create: bool = False) -> None:
        self.path = path
        self.slots = slots
        size = RECORD.size * slots
        if create:
            path.write_bytes(bytes(size))
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), size)

    def write(self, slot: int, pid: int, state: str, sessions: int = 0, served: int = 0) -> None:
        record = RECORD.pack(pid, STATES.index(state), sessions, served, time.monotonic())
        offset = slot * RECORD.size
        self._map[offset : offset + RECORD.size] = record

    def read(self) -> list[SlotStatus]:
        out = []
        for slot in range(self.slots):
            pid, state, sessions, served, beat = RECORD.unpack_from(self._map, slot * RECORD.size)
            name = STATES[state] if 0 <= state < len(STATES) else "empty"
            out.append(SlotStatus(slot, pid, name, sessions, served, beat))
        return out

    def close(self) -> None:
        self._map.close()


def summary(table: StatusTable, own: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The health payload for all workers (``own``: this worker's service's) and whether the
    whole is ready: no worker draining and at least one serving. ``status`` is ``ok`` when
    every worker serves, ``degraded`` when only some do (one is restarting)."""
    now = time.monotonic()
    slots = table.read()
    states = [
        "stalled" if s.state not in ("empty", "exited") and now - s.heartbeat > STALE_S else s.state
        for s in slots
    ]
    workers: list[dict[str, Any]] = [
        {"slot": s.slot, "pid": s.pid, "status": state, "sessions": s.sessions, "served": s.served}
        for s, state in zip(slots, states, strict=True)
    ]
    ready = states.count("ready")
    if "draining" in states or own["status"] == "draining":
        status = "draining"
    elif ready == len(states):
        status = "ok"
    elif ready:
        status = "degraded"
    else:
        status = own["status"] if own["status"] != "ok" else "loading"
    payload = {
        **own,
        "status": status,
        "sessions": sum(s.sessions for s in slots),
        "max_connections": own["max_connections"] * len(workers),
        "workers_ready": ready,
        "workers": workers,
    }
    return payload, status in ("ok", "degraded")


class WorkerService(Service):
    """The service of one worker: publishes its state into the table, answers ``/healthz``
    for all workers, and accepts connections only once its model is loaded (so that connections
    the kernel hands to a restarting worker wait for it instead of being refused)."""

    def __init__(self, config: ServerConfig, table: StatusTable, slot: int) -> None:
        super().__init__(config)
        self.table = table
        self.slot = slot
        self.served = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await super().start()
        self._publish()
        self._tasks = [asyncio.create_task(self._beat()), asyncio.create_task(self._accept())]

    async def shutdown(self) -> None:
        self._publish()
        await super().shutdown()
        for task in self._tasks:
            task.cancel()
        self.table.write(self.slot, os.getpid(), "exited", 0, self.served)

    async def _beat(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(HEARTBEAT_S)

    async def _accept(self) -> None:
        with contextlib.suppress(Exception):  # a failed load ends the worker (cli.serve)
            await self.wait_loaded()
            start = getattr(asyncio.get_running_loop(), "start_serving", None)
            if start is not None:
                await start()
            self._publish()

    def _publish(self) -> dict[str, Any]:
        own = super()._health()
        state = FROM_SERVICE.get(own["status"], "unavailable")
        self.table.write(self.slot, os.getpid(), state, own["sessions"], self.served)
        return own

    def _health(self) -> dict[str, Any]:
        return summary(self.table, self._publish())[0]

    def _http(self, path: str) -> Response:
        if path == "/healthz":
            payload, ready = summary(self.table, self._publish())
            return http.health(payload, ready)
        return super()._http(path)

    async def _handle(self, ws: ServerConnection) -> None:
        self.served += 1
        await super()._handle(ws)
