"""The scheduler's mechanics with a deterministic runner: batching, routing, bounds, shutdown.

onnxruntime itself is exercised by tests/test_streaming.py on the fixture model; here a runner
that computes logits from its input makes every routing mistake visible.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pytest
from numpy.typing import NDArray

from streamasr.server.errors import InferenceError, SchedulerClosedError, SchedulerOverloadedError
from streamasr.server.scheduler import Scheduler, SchedulerConfig


class EchoRunner:
    """Logits (1 frame, 2 symbols) = (first sample, length); can be held at its next call."""

    provider = "test"
    precision = "fp32"

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail_next = False

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        self.entered.set()
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
    # The longest deadline allowed (1 s): a batch that waited for it would leave the futures
    # unfinished at 0.9 s (the batch itself is the same either way); one that leaves when full
    # is done within milliseconds.
    with Scheduler(runner, SchedulerConfig(max_batch=4, max_wait_ms=1000)) as scheduler:
        futures = [scheduler.submit(window(i, 50)) for i in range(4)]
        assert [f.result(timeout=0.9)[0, 0] for f in futures] == [0, 1, 2, 3]
    assert runner.batches == [(4, 50)]


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
