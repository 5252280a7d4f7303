"""Fakes shared by the tests: a clock that moves only when told to (no sleeps in tests)."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A monotonic clock for code that takes a ``clock`` (and optionally a ``sleep``): time
    moves when a test sets or advances :attr:`now`, or when the code under test sleeps."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        """Every :meth:`sleep` asked for, in order."""

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Stands in for ``asyncio.sleep``: the time passes at once (the loop still turns)."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
