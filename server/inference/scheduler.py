"""One model, many streams: equal-length windows gathered into batches and run off the caller.

Streams :meth:`Scheduler.submit` one model input (a window, no batch axis) and get a
:class:`concurrent.futures.Future` of its logits. Worker threads wait on a condition variable:
a batch leaves as soon as ``max_batch`` windows of one shape are waiting, or when the oldest
waiting window has waited ``max_wait_ms`` (a deadline wait, no polling). Windows are grouped by
shape and never padded: zero padding changes what GroupNorm models (base checkpoints) compute and
what per-window normalisation sees. The queue is bounded; :meth:`Scheduler.stop` runs what is
queued, then joins the workers.

Statistics: the workers finish batches concurrently, so the counts are kept under a lock and read
as a consistent :class:`SchedulerStats` snapshot (:attr:`Scheduler.stats`, the library API).
Monitoring attaches a :class:`SchedulerObserver` instead of reading the snapshot at scrape time:
it is told of every finished batch (under the same lock, so the snapshot returned by
:meth:`Scheduler.add_observer` plus the calls that follow add up to the totals exactly) and of
every change of the queue's depth (under the queue's lock, so the last value it got is current).
Pushing events rather than collecting state is what lets the service export these through
prometheus_client's multiprocess mode, where a scrape reads only what each worker process wrote
to its files, never another process's objects (a custom collector would see one process only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streamasr.server.errors import (
    InferenceError,
    SchedulerClosedError,
    SchedulerOverloadedError,
    StreamConfigError,
)
from streamasr.server.inference.runtime import Runner
from streamasr.server.inference.stats import SchedulerObserver, SchedulerStats, StatsRecorder

log = logging.getLogger(__name__)

ModelInput = NDArray[np.float32]
"""One window's graph input without the batch axis: (samples,) or (frames, features)."""


@dataclass(frozen=True)
class SchedulerConfig:
    """Batching and queue limits."""

    max_batch: int = 8
    """Most windows in one onnxruntime call."""
    max_wait_ms: float = 5.0
    """Longest a window waits for others of its shape before running alone."""
    max_queue: int = 512
    """Most windows waiting at once; beyond it :meth:`Scheduler.submit` raises."""
    workers: int = 1
    """Threads calling onnxruntime (each call uses the session's intra-op threads);
    :class:`~streamasr.server.engine.engine.EngineConfig` picks it per device when not given."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= 256:
            raise StreamConfigError("max_batch", self.max_batch, "1 to 256")
        if not 0.0 <= self.max_wait_ms <= 1000.0:
            raise StreamConfigError("max_wait_ms", self.max_wait_ms, "0 to 1000 ms")
        if self.max_queue < 1:
            raise StreamConfigError("max_queue", self.max_queue, "at least 1")
        if not 1 <= self.workers <= 16:
            raise StreamConfigError("workers", self.workers, "1 to 16")


@dataclass
class _Request:
    data: ModelInput
    future: Future[NDArray[np.float32]]
    arrival: float


class Scheduler:
    """Batches windows of many streams onto one runner (one onnxruntime session)."""

    def __init__(
        self,
        runner: Runner,
        config: SchedulerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner
        self.config = config or SchedulerConfig()
        self._clock = clock
        """Times arrivals and batch deadlines (tests pass a fake one; waits still sleep in real
        time up to the deadline the clock gives)."""
        self._recorder = StatsRecorder()
        self._cond = threading.Condition()
        self._groups: OrderedDict[tuple[int, ...], deque[_Request]] = OrderedDict()
        """Waiting requests by input shape; a group's position is that of its oldest request."""
        self._queued = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.thread_name = f"asr-scheduler-{id(self):x}"
        """Prefix of the worker threads' names."""

    @property
    def batched(self) -> bool:
        """Whether a batch may hold several windows: ``max_batch`` over 1 and a runner that
        runs them together."""
        return self.config.max_batch > 1 and self.runner.batched

    def start(self) -> None:
        with self._cond:
            if self._threads or self._stopping:
                return
            self._threads = [
                threading.Thread(target=self._work, name=f"{self.thread_name}-{i}", daemon=True)
                for i in range(self.config.workers)
            ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Run what is queued, then stop and join the workers; later submits raise."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def precision(self) -> str:
        """The runner's model file (``fp32``, ``fp16``, ``int8``)."""
        return self.runner.precision

    @property
    def provider(self) -> str:
        """The runner's onnxruntime provider."""
        return self.runner.provider

    @property
    def stats(self) -> SchedulerStats:
        """The counts so far (a snapshot: it does not change afterwards)."""
        return self._recorder.stats

    def add_observer(self, observer: SchedulerObserver) -> SchedulerStats:
        """Report every later batch and queue change to ``observer``; returns the counts so far,
        to which exactly the batches reported afterwards add up."""
        with self._cond:
            return self._recorder.add_observer(observer, self._queued)

    def remove_observer(self, observer: SchedulerObserver) -> None:
        self._recorder.remove_observer(observer)

    def submit(self, data: ModelInput) -> Future[NDArray[np.float32]]:
        """Queue one window's input; the future gets its (frames, vocab) logits."""
        future: Future[NDArray[np.float32]] = Future()
        request = _Request(data, future, self._clock())
        with self._cond:
            if self._stopping or not self._threads:
                raise SchedulerClosedError()
            if self._queued >= self.config.max_queue:
                raise SchedulerOverloadedError(self._queued)
            group = self._groups.get(data.shape)
            if group is None:
                group = self._groups[data.shape] = deque()
            group.append(request)
            self._queued += 1
            self._queue_changed()
            self._cond.notify()
        return future

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _next_batch(self) -> list[_Request] | None:
        """Block until a batch is due; None when stopping with nothing left."""
        with self._cond:
            while True:
                if not self._groups:
                    if self._stopping:
                        return None
                    self._cond.wait()
                    continue
                shape = self._due()
                if shape is not None:
                    return self._take(shape)
                oldest = next(iter(self._groups.values()))[0]
                self._cond.wait(oldest.arrival + self.config.max_wait_ms / 1000 - self._clock())

    def _due(self) -> tuple[int, ...] | None:
        """A full group, else the oldest group once its deadline passed (or when stopping)."""
        for shape, group in self._groups.items():
            if len(group) >= self.config.max_batch:
                return shape
        shape, group = next(iter(self._groups.items()))
        deadline = group[0].arrival + self.config.max_wait_ms / 1000
        if self._stopping or self._clock() >= deadline:
            return shape
        return None

    def _take(self, shape: tuple[int, ...]) -> list[_Request]:
        group = self._groups[shape]
        batch = [group.popleft() for _ in range(min(len(group), self.config.max_batch))]
        if group:  # what is left takes its place by the arrival of its oldest request
            ordered = sorted(self._groups.items(), key=lambda item: item[1][0].arrival)
            self._groups = OrderedDict(ordered)
        else:
            del self._groups[shape]
        self._queued -= len(batch)
        self._queue_changed()
        return batch

    def _queue_changed(self) -> None:
        """Tell the observers the queue's depth (the caller holds ``_cond``)."""
        self._recorder.queue_changed(self._queued)

    def _run(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            logits = self.runner.run(np.stack([r.data for r in live]))
        except InferenceError as exc:
            log.error("%s", exc)
            for request in live:
                request.future.set_exception(exc)
            return
        except Exception as exc:  # a bug must reach the waiting streams, not kill the worker
            log.exception("unexpected error running a batch of %d", len(live))
            error = InferenceError(f"{type(exc).__name__}: {exc}")
            for request in live:
                request.future.set_exception(error)
            return
        self._recorder.batch_finished(len(live), time.perf_counter() - started)
        for request, row in zip(live, logits, strict=True):
            request.future.set_result(row)
