"""Socket reads gathered into fewer, fuller turns of the event loop (``--io-tick-ms``).

A live client sends a frame every 20 ms, so at 30 streams the loop wakes about 1,500 times a
second for one small read each, and most of each wake-up's cost is a cold start (caches that
Triton's or onnxruntime's threads filled meanwhile), not the read. While at least
:data:`MIN_SESSIONS` sessions are open, a :class:`Pacer` makes every turn of the loop last at
least one tick: after a turn it sleeps the rest of the tick, so the next turn finds the frames
of many streams ready and handles them together. Each frame waits at most one tick more (a
caption's latency grows by about that); nothing is dropped or reordered, and the sleep only
holds this loop's thread (inference and the gRPC client run in their own).

Off (0) by default: an operator trades the tick's latency for the CPU it saves
(docs/scaling.md, "Gathering reads").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_SESSIONS = 8
"""Below this many open sessions the loop waits for sockets as usual (a tick would cost more
turns than it saves)."""
IDLE_CHECK_S = 0.25
"""How often an idle pacer looks whether enough sessions are open again."""


@dataclass
class Pacer:
    """Stretches each turn of the running loop to ``tick_s`` while ``sessions()`` is at least
    :data:`MIN_SESSIONS`."""

    tick_s: float
    sessions: Callable[[], int]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    """Blocks the loop's thread (a fake in tests)."""
    turns: int = field(default=0, init=False)
    """Turns stretched so far."""

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            if self.sessions() < MIN_SESSIONS:
                await asyncio.sleep(IDLE_CHECK_S)
                continue
            started = self.clock()
            await asyncio.sleep(0)  # one turn: every read that is ready is handled
            spent = self.clock() - started
            if spent < self.tick_s:
                self.sleep(self.tick_s - spent)
            self.turns += 1
