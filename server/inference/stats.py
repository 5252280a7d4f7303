"""What a backend has run, counted once: :class:`StatsRecorder` behind both backends.

The local scheduler and the Triton backend record finished batches and queue depths here; the
service's metrics follow them as a :class:`SchedulerObserver`. Counts are one consistent
snapshot (:class:`SchedulerStats`), and an observer added later gets the counts so far, to which
exactly the batches reported afterwards add up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerStats:
    """Counts since start, as one consistent snapshot."""

    batches: int = 0
    """Runner calls that returned logits (failed calls are not counted)."""
    windows: int = 0
    """Windows in those calls."""
    busy_s: float = 0.0
    """Seconds spent inside the runner."""
    batch_sizes: Mapping[int, int] = field(default_factory=dict)
    """Batches by their number of windows."""


class SchedulerObserver(Protocol):
    """Told what the scheduler does, from its worker threads and from :meth:`Scheduler.submit`.

    Calls are made under the scheduler's locks: keep them short and never call back into the
    scheduler. An exception is logged and otherwise ignored.
    """

    def batch_finished(self, windows: int, seconds: float) -> None:
        """A runner call returned logits for ``windows`` windows after ``seconds``."""

    def queue_changed(self, queued: int) -> None:
        """``queued`` windows wait for inference now."""


def _notify(report: Callable[..., None], *args: float) -> None:
    """Call an observer's method; its failure is logged and must not stop the scheduler."""
    try:
        report(*args)
    except Exception:
        log.exception("inference observer %r failed", report)


class StatsRecorder:
    """The counts and observers of one backend, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = SchedulerStats()
        self._observers: tuple[SchedulerObserver, ...] = ()

    @property
    def stats(self) -> SchedulerStats:
        """The counts so far (a snapshot: it does not change afterwards)."""
        with self._lock:
            return self._stats

    def add_observer(self, observer: SchedulerObserver, queued: int) -> SchedulerStats:
        """Report later batches and queue changes to ``observer``, telling it the depth now;
        returns the counts so far."""
        with self._lock:
            self._observers = (*self._observers, observer)
            stats = self._stats
        _notify(observer.queue_changed, queued)
        return stats

    def remove_observer(self, observer: SchedulerObserver) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def queue_changed(self, queued: int) -> None:
        """Tell the observers the depth (under the caller's queue lock, so depths arrive in
        order)."""
        for observer in self._observers:
            _notify(observer.queue_changed, queued)

    def batch_finished(self, windows: int, seconds: float) -> None:
        """Count a finished batch and tell the observers (before its results go out, so a
        stream that has its logits sees them counted)."""
        with self._lock:
            old = self._stats
            sizes = dict(old.batch_sizes)
            sizes[windows] = sizes.get(windows, 0) + 1
            self._stats = SchedulerStats(
                old.batches + 1, old.windows + windows, old.busy_s + seconds, sizes
            )
            for observer in self._observers:
                _notify(observer.batch_finished, windows, seconds)
