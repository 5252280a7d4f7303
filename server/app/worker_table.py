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
import mmap
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamasr.server.service.config import ServerConfig
from streamasr.server.service.service import Service

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
    """The service of one worker, through :class:`~.service.Service`'s hooks: it serves on the
    slot's inherited socket, accepts connections only once its model is loaded (so connections
    the kernel hands to a restarting worker wait for it instead of being refused), publishes
    its state into the table whenever it changes and once a second, and answers ``/healthz``
    for all workers."""

    def __init__(
        self, config: ServerConfig, table: StatusTable, slot: int, sock: socket.socket | None
    ) -> None:
        super().__init__(
            config,
            sock=sock,
            accept_when_loaded=True,
            health_view=self._all_workers,
            on_change=self._publish,
        )
        self.table = table
        self.slot = slot
        self._beat_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._publish()
        self._beat_task = asyncio.create_task(self._beat())

    async def shutdown(self) -> None:
        await super().shutdown()
        if self._beat_task is not None:
            self._beat_task.cancel()
        self.table.write(self.slot, os.getpid(), "exited", 0, self.served)

    async def _beat(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(HEARTBEAT_S)

    def _publish(self, own: dict[str, Any] | None = None) -> None:
        own = self.status() if own is None else own
        state = FROM_SERVICE.get(own["status"], "unavailable")
        self.table.write(self.slot, os.getpid(), state, own["sessions"], self.served)

    def _all_workers(self, own: dict[str, Any], ready: bool) -> tuple[dict[str, Any], bool]:
        self._publish(own)
        return summary(self.table, own)
