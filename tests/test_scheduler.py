"""The scheduler's mechanics with a deterministic runner: batching, routing, bounds, shutdown,
and its counts under concurrent workers.

onnxruntime itself is exercised by tests/test_streaming.py on the fixture model; here a runner
that computes logits from its input makes every routing mistake visible.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from concurrent.futures import Future

import numpy as np
import pytest
from numpy.typing import NDArray

from streamasr.server.errors import InferenceError, SchedulerClosedError, SchedulerOverloadedError
from streamasr.server.inference.scheduler import Scheduler, SchedulerConfig
from streamasr.server.inference.stats import SchedulerStats

from .timeouts import timeout


class EchoRunner:
    """Logits (1 frame, 2 symbols) = (first sample, length); can be held at its next call."""

    provider = "test"
    precision = "fp32"
    batched = True

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail_next = False
        self._calls = 0
        self._called = threading.Condition()

    def wait_calls(self, n: int) -> None:
        """Block until the runner has been entered ``n`` times."""
        with self._called:
            self._called.wait_for(lambda: self._calls >= n)

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        self.entered.set()
        with self._called:
            self._calls += 1
            self._called.notify_all()
        self.hold.wait()
        self.batches.append(batch.shape)
        if self.fail_next:
            self.fail_next = False
            raise InferenceError("boom")
        out = np.stack([batch[:, 0], np.full(batch.shape[0], batch.shape[1])], axis=1)
        return out[:, None, :].astype(np.float32)


def window(value: float, length: int) -> NDArray[np.float32]:
    return np.full(length, value, dtype=np.float32)


def held(runner: EchoRunner, scheduler: Scheduler) -> Future[NDArray[np.float32]]:
    """Occupy the worker with one request so that the next ones queue up."""
    runner.hold.clear()
    runner.entered.clear()
    first = scheduler.submit(window(-1.0, 3))
    runner.entered.wait()
    return first


def test_results_are_routed_and_batches_hold_one_shape() -> None:
    runner = EchoRunner()
    with Scheduler(runner, SchedulerConfig(max_batch=3, max_wait_ms=0)) as scheduler:
        first = held(runner, scheduler)
        futures = [
            (v, n, scheduler.submit(window(v, n)))
            for v, n in [(float(i), (100, 200)[i % 2]) for i in range(10)]
        ]
        runner.hold.set()
        assert first.result()[0].tolist() == [-1.0, 3.0]
        for value, length, future in futures:
            assert future.result()[0].tolist() == [value, float(length)]
    sizes = [shape[0] for shape in runner.batches[1:]]
    assert all(size <= 3 for size in sizes) and sum(sizes) == 10
    assert max(sizes) == 3  # queued windows of one shape left together


def test_a_full_batch_does_not_wait_for_the_deadline() -> None:
    runner = EchoRunner()
    # The scheduler's clock never moves, so no deadline ever passes: a batch can only leave
    # because it is full. A non-full group stays queued until stop.
    config = SchedulerConfig(max_batch=4, max_wait_ms=1000)
    with Scheduler(runner, config, clock=lambda: 100.0) as scheduler:
        futures = [scheduler.submit(window(i, 50)) for i in range(4)]
        waiting = scheduler.submit(window(9, 60))
        assert [f.result(timeout=timeout(30))[0, 0] for f in futures] == [0, 1, 2, 3]
        assert not waiting.done() and scheduler.queued == 1
    assert waiting.result()[0, 0] == 9  # stop runs what is queued
    assert runner.batches == [(4, 50), (1, 60)]


def test_windows_queued_behind_busy_workers_leave_in_full_batches() -> None:
    """Both workers held inside the runner: what queues meanwhile leaves in batches of
    ``max_batch`` (2, 2 and the 1 left), whatever the order the workers wake in."""
    runner = EchoRunner()
    runner.hold.clear()
    with Scheduler(runner, SchedulerConfig(max_batch=2, max_wait_ms=0, workers=2)) as scheduler:
        blockers = [scheduler.submit(window(-1.0, 3))]
        runner.wait_calls(1)
        blockers.append(scheduler.submit(window(-2.0, 3)))
        runner.wait_calls(2)
        futures = [scheduler.submit(window(i, 10)) for i in range(5)]
        assert scheduler.queued == 5
        runner.hold.set()
        assert [f.result()[0, 0] for f in futures] == [0, 1, 2, 3, 4]
        assert [b.result()[0, 0] for b in blockers] == [-1, -2]
    assert sorted(shape[0] for shape in runner.batches) == [1, 1, 1, 2, 2]
    assert scheduler.stats.batch_sizes == {1: 3, 2: 2}


def test_stop_runs_queued_work_and_joins_workers() -> None:
    runner = EchoRunner()
    scheduler = Scheduler(runner, SchedulerConfig(max_batch=2, max_wait_ms=1000, workers=2))
    scheduler.start()
    futures = [scheduler.submit(window(i, 10)) for i in range(5)]
    scheduler.stop()
    assert [f.result()[0, 0] for f in futures] == [0, 1, 2, 3, 4]
    assert not [t for t in threading.enumerate() if t.name.startswith(scheduler.thread_name)]
    with pytest.raises(SchedulerClosedError):
        scheduler.submit(window(0, 10))


def test_submit_before_start_is_refused() -> None:
    with pytest.raises(SchedulerClosedError):
        Scheduler(EchoRunner()).submit(window(0, 10))


def test_queue_is_bounded() -> None:
    runner = EchoRunner()
    with Scheduler(runner, SchedulerConfig(max_queue=2, max_wait_ms=0)) as scheduler:
        held(runner, scheduler)
        scheduler.submit(window(1, 10))
        scheduler.submit(window(2, 10))
        with pytest.raises(SchedulerOverloadedError, match="2 windows"):
            scheduler.submit(window(3, 10))
        runner.hold.set()


def test_runner_errors_reach_the_streams_and_the_worker_survives() -> None:
    runner = EchoRunner()
    with Scheduler(runner, SchedulerConfig(max_wait_ms=0)) as scheduler:
        runner.fail_next = True
        with pytest.raises(InferenceError, match="boom"):
            scheduler.submit(window(1, 10)).result()
        assert scheduler.submit(window(2, 10)).result()[0, 0] == 2


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_ms": -1}, {"workers": 0}])
def test_config_limits(kwargs: dict[str, float]) -> None:
    from streamasr.server.errors import StreamConfigError

    with pytest.raises(StreamConfigError):
        SchedulerConfig(**kwargs)  # type: ignore[arg-type]


# -- counts ---------------------------------------------------------------------------------------


class LockedRunner(EchoRunner):
    """An EchoRunner that records every batch size under a lock."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: Counter[int] = Counter()
        self._lock = threading.Lock()

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        out = super().run(batch)
        with self._lock:
            self.sizes[batch.shape[0]] += 1
        return out


class RecordingObserver:
    """A SchedulerObserver that adds up what it is told."""

    def __init__(self) -> None:
        self.batches = 0
        self.windows = 0
        self.busy_s = 0.0
        self.sizes: Counter[int] = Counter()
        self.queue: list[int] = []
        self._lock = threading.Lock()

    def batch_finished(self, windows: int, seconds: float) -> None:
        with self._lock:
            self.batches += 1
            self.windows += windows
            self.busy_s += seconds
            self.sizes[windows] += 1

    def queue_changed(self, queued: int) -> None:
        self.queue.append(queued)


def submit_from_threads(scheduler: Scheduler, threads: int, each: int) -> list[float]:
    """``threads`` threads submit ``each`` windows (two shapes); every window's first logit."""
    results: list[list[float]] = [[] for _ in range(threads)]

    def client(index: int) -> None:
        rng = random.Random(index)
        futures = [
            scheduler.submit(window(index * each + i, rng.choice((40, 80)))) for i in range(each)
        ]
        results[index] = [float(f.result()[0, 0]) for f in futures]

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return [value for chunk in results for value in chunk]


def test_counts_are_right_under_concurrent_workers() -> None:
    """Four workers finish batches at once while eight threads submit 2,400 windows: every
    window is counted once, and the batch sizes add up to the windows and to the batches."""
    runner = LockedRunner()
    observer = RecordingObserver()
    config = SchedulerConfig(max_batch=8, max_wait_ms=1, max_queue=4096, workers=4)
    with Scheduler(runner, config) as scheduler:
        assert scheduler.add_observer(observer) == SchedulerStats()
        results = submit_from_threads(scheduler, threads=8, each=300)
    assert sorted(results) == list(range(2400))
    stats = scheduler.stats
    assert stats.windows == 2400
    assert stats.batches == sum(runner.sizes.values())
    assert dict(stats.batch_sizes) == dict(runner.sizes)
    assert sum(size * n for size, n in stats.batch_sizes.items()) == stats.windows
    assert max(stats.batch_sizes) <= 8
    assert (observer.batches, observer.windows) == (stats.batches, stats.windows)
    assert observer.sizes == runner.sizes
    assert observer.busy_s == pytest.approx(stats.busy_s)
    assert observer.queue[0] == 0 and observer.queue[-1] == 0 and max(observer.queue) >= 1


def test_an_observer_added_late_adds_up_to_the_totals() -> None:
    runner = EchoRunner()
    observer = RecordingObserver()
    with Scheduler(runner, SchedulerConfig(max_batch=3, max_wait_ms=0)) as scheduler:
        first = held(runner, scheduler)
        early = [scheduler.submit(window(i, 20)) for i in range(4)]
        runner.hold.set()
        for future in (first, *early):
            future.result()
        before = scheduler.add_observer(observer)
        first = held(runner, scheduler)
        late = [scheduler.submit(window(i, 20)) for i in range(5)]
        assert observer.queue[-1] == 5  # told of the depth while the worker is held
        runner.hold.set()
        for future in (first, *late):
            future.result()
        scheduler.remove_observer(observer)
        scheduler.submit(window(0, 20)).result()
    assert (before.batches, before.windows) == (3, 5)  # 1 held, then 3 + 1
    assert (observer.batches, observer.windows) == (3, 6)  # 1 held, then 3 + 2
    assert scheduler.stats.batches == before.batches + observer.batches + 1
    assert scheduler.stats.windows == before.windows + observer.windows + 1


def test_a_failing_observer_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def batch_finished(self, windows: int, seconds: float) -> None:
            raise RuntimeError("observer bug")

        def queue_changed(self, queued: int) -> None:
            raise RuntimeError("observer bug")

    scheduler = Scheduler(EchoRunner(), SchedulerConfig(max_wait_ms=0))
    with caplog.at_level(logging.ERROR, logger="streamasr.server.inference.scheduler"), scheduler:
        scheduler.add_observer(Broken())
        assert scheduler.submit(window(7, 10)).result()[0, 0] == 7
    assert scheduler.stats.windows == 1
    assert "observer bug" in caplog.text
