"""Windows on a Triton Inference Server pool over gRPC (``--inference triton://HOST:PORT``).

The backend owns one event loop in a thread of its own, on which every request runs as a
coroutine on one long-lived gRPC stream (:mod:`.triton_grpc`; no thread per request):
:meth:`TritonBackend.submit` queues a window and returns a concurrent future, which streams
block on or await exactly as the local scheduler's; the first window of a burst wakes the loop
once (``call_soon_threadsafe``), which then takes every window queued so far. Where the
precision batches (fp32/fp16, ``max_batch_size`` 64) the windows of one shape taken together,
from any sessions, go as one request of up to 64 windows: nothing waits for them, so this costs
no latency, and Triton's dynamic batcher still merges the requests of all frontends. int8 goes
one window per request (see :mod:`.triton_contract`). The request follows
:mod:`.triton_contract`: the manifest's input name, FP32 ``[windows, samples]`` or
``[windows, frames, F]``; the manifest's output name, FP32 ``[windows, frames, V]``.

The pool's failures:

* **Deadline**: a request, its retries included, gets ``timeout_s``; past it the window fails
  with :class:`~.errors.InferenceUnavailableError`.
* **Retries**: a request answered UNAVAILABLE is sent again up to ``retries`` times, after
  ``retry_backoff_s``, doubling, within the deadline. When they run out the backend turns
  unavailable at once (the watcher turns it back).
* **Health**: a watcher probes server_ready and model_ready every ``health_interval_s``. While
  the last probe failed, :attr:`TritonBackend.available` is False and :meth:`submit` raises
  InferenceUnavailableError, so sessions in flight end with ``inference_unavailable`` (1013)
  instead of hanging, and the service answers ``/healthz`` 503 and refuses new sessions. The
  first good probe makes it available again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Protocol

import numpy as np
from tritonclient.utils import InferenceServerException

from streamasr.server.arrays import Logits
from streamasr.server.errors import (
    InferenceError,
    InferenceUnavailableError,
    SchedulerClosedError,
    SchedulerOverloadedError,
)
from streamasr.server.inference.config import InferenceConfig
from streamasr.server.inference.runtime import choose_precision
from streamasr.server.inference.scheduler import ModelInput, SchedulerConfig
from streamasr.server.inference.stats import SchedulerObserver, SchedulerStats, StatsRecorder
from streamasr.server.inference.triton_contract import MAX_BATCH_SIZE, model_name
from streamasr.server.inference.triton_grpc import GrpcTriton
from streamasr.server.inference.triton_health import PoolHealth, ReadinessClient, probe
from streamasr.server.manifest import Manifest

log = logging.getLogger(__name__)

PROVIDER = "triton"
"""What ``/healthz`` and the model info metric name as the provider."""


class TritonClient(ReadinessClient, Protocol):
    """The calls of :class:`.triton_grpc.GrpcTriton` the backend makes; failures raise
    tritonclient's ``InferenceServerException`` with the gRPC status."""

    async def infer(self, model_name: str, batch: Logits, *, timeout: float) -> Logits: ...

    async def close(self) -> None: ...


def connect(address: str, input_name: str, output_name: str) -> TritonClient:
    """The gRPC client of ``HOST:PORT`` (made on the backend's loop)."""
    return GrpcTriton(address, input_name, output_name)


def open_triton(
    manifest: Manifest, config: InferenceConfig, precision: str | None, max_queue: int
) -> TritonBackend:
    """The backend for ``manifest`` on ``config.url``; ``precision`` None resolves as on a CPU
    frontend (int8, else fp32) and names the default model (``triton_contract.model_name``)."""
    resolved = choose_precision(manifest, "cpu", precision)
    model = config.triton_model or model_name(manifest.name, resolved)
    return TritonBackend(
        manifest.input.name,
        manifest.output_name,
        resolved,
        config,
        model=model,
        max_queue=max_queue,
    )


class TritonBackend:
    """Submits windows to Triton; an :class:`~.inference.InferenceBackend` and a
    :class:`~.runtime.Runner` (``run`` submits a batch's windows and waits)."""

    provider = PROVIDER

    def __init__(
        self,
        input_name: str,
        output_name: str,
        precision: str,
        inference: InferenceConfig,
        *,
        model: str,
        max_queue: int = 512,
        client_factory: Callable[[], TritonClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` measures the deadlines and ``sleep`` waits between retries (tests fake
        both); the health watcher waits ``inference.health_interval_s`` on the loop's clock."""
        self.precision = precision
        self.batched = MAX_BATCH_SIZE.get(precision, 1) > 1
        """Triton merges this precision's requests (int8 runs one window at a time)."""
        self.model = model
        self.inference = inference
        self.config = SchedulerConfig(max_batch=1, max_wait_ms=0.0, max_queue=max_queue)
        self.thread_name = f"asr-triton-{id(self):x}"
        self._input = input_name
        self._output = output_name
        self._factory = client_factory or (
            lambda: connect(inference.address, input_name, output_name)
        )
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._inflight: set[Future[Logits]] = set()
        self._incoming: list[tuple[ModelInput, Future[Logits]]] = []
        """Windows submitted and not yet taken by the loop."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._health = PoolHealth(inference.url, model)
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: TritonClient | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._recorder = StatsRecorder()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop, open the client and probe the pool once (it may be down: the
        watcher keeps probing)."""
        with self._lock:
            if self._loop is not None or self._stopping:
                return
            loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=_run_loop, args=(loop,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), loop).result()

    def stop(self) -> None:
        """Refuse new windows, let those in flight finish (their deadline bounds the wait),
        close the client and join the loop's thread."""
        with self._lock:
            self._stopping = True
            loop, thread, pending = self._loop, self._thread, list(self._inflight)
            self._loop = None
        if loop is None or thread is None:
            return
        concurrent.futures.wait(pending, timeout=self.inference.timeout_s + 1.0)
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(self.inference.timeout_s)
        except TimeoutError:
            log.warning("the Triton client did not close within %g s", self.inference.timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> TritonBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _open(self) -> None:
        self._client = self._factory()
        await self._probe()
        self._watcher = asyncio.create_task(self._watch())

    async def _close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    # -- state ------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._health.available

    @property
    def problem(self) -> str | None:
        return self._health.problem

    @property
    def queued(self) -> int:
        return len(self._inflight)

    @property
    def stats(self) -> SchedulerStats:
        return self._recorder.stats

    def add_observer(self, observer: SchedulerObserver) -> SchedulerStats:
        with self._lock:
            return self._recorder.add_observer(observer, len(self._inflight))

    def remove_observer(self, observer: SchedulerObserver) -> None:
        self._recorder.remove_observer(observer)

    # -- requests ---------------------------------------------------------------------------------

    def submit(self, data: ModelInput) -> Future[Logits]:
        (future,) = self._enqueue([data])
        return future

    def run(self, batch: ModelInput) -> Logits:
        """A batch's logits (blocking; not from the backend's loop): one request where the
        precision batches, else one per window."""
        futures = self._enqueue(list(batch))
        return np.stack([future.result() for future in futures])

    def _enqueue(self, windows: list[ModelInput]) -> list[Future[Logits]]:
        """Queue ``windows`` for the loop (all or none); wake it if the queue was empty."""
        with self._lock:
            loop = self._loop
            if self._stopping or loop is None:
                raise SchedulerClosedError()
            if not self._health.available:
                raise InferenceUnavailableError(self.inference.url, self._health.problem or "down")
            if len(self._inflight) + len(windows) > self.config.max_queue:
                raise SchedulerOverloadedError(len(self._inflight))
            futures: list[Future[Logits]] = [Future() for _ in windows]
            wake = not self._incoming
            self._incoming += zip(windows, futures, strict=True)
            self._inflight.update(futures)
            self._queue_changed()
        if wake:
            loop.call_soon_threadsafe(self._take)
        for future in futures:
            future.add_done_callback(self._answered)
        return futures

    def _take(self) -> None:
        """On the loop: every queued window into requests, each served by a task."""
        with self._lock:
            taken, self._incoming = self._incoming, []
        most = MAX_BATCH_SIZE.get(self.precision, 1) if self.batched else 1
        groups: dict[tuple[int, ...], list[tuple[ModelInput, Future[Logits]]]] = {}
        for item in taken:
            group = groups.setdefault(item[0].shape, [])
            if len(group) == most:
                self._serve_later(group)
                group = groups[item[0].shape] = []
            group.append(item)
        for group in groups.values():
            self._serve_later(group)

    def _serve_later(self, group: list[tuple[ModelInput, Future[Logits]]]) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, group: list[tuple[ModelInput, Future[Logits]]]) -> None:
        """One request for ``group``'s windows (one shape); their futures get the answers."""
        batch = group[0][0][np.newaxis] if len(group) == 1 else np.stack([d for d, _ in group])
        try:
            logits = await self._infer(batch)
        except BaseException as exc:  # every window of the request gets the request's failure
            for _, future in group:
                _settle(future, exc=exc)
            if not isinstance(exc, Exception):
                raise
            return
        for index, (_, future) in enumerate(group):
            _settle(future, logits[index])

    def _answered(self, future: Future[Logits]) -> None:
        with self._lock:
            self._inflight.discard(future)
            self._queue_changed()

    def _queue_changed(self) -> None:
        """Tell the observers the depth (the caller holds the lock)."""
        self._recorder.queue_changed(len(self._inflight))

    async def _infer(self, batch: ModelInput) -> Logits:
        """One request (``[windows, ...]``) with retries on UNAVAILABLE, all within the deadline."""
        started = self._clock()
        deadline = started + self.inference.timeout_s
        attempt = 0
        while (remaining := deadline - self._clock()) > 0:
            try:
                logits = await asyncio.wait_for(self._call(batch, remaining), remaining)
            except TimeoutError:
                break
            except InferenceServerException as exc:
                status = str(exc.status() or "")
                if status.endswith("DEADLINE_EXCEEDED"):
                    break
                if not status.endswith("UNAVAILABLE"):
                    raise InferenceError(f"Triton model {self.model}: {exc}") from None
                if attempt >= self.inference.retries:
                    self._health.record(f"{exc.message()} ({attempt + 1} attempts)")
                    raise InferenceUnavailableError(self.inference.url, exc.message()) from None
                await self._sleep(self.inference.retry_backoff_s * 2**attempt)
                attempt += 1
                continue
            self._finished(len(batch), self._clock() - started)
            return logits
        problem = f"no reply within {self.inference.timeout_s:g} s"
        raise InferenceUnavailableError(self.inference.url, problem)

    async def _call(self, batch: ModelInput, timeout: float) -> Logits:
        client = self._client
        if client is None:
            raise SchedulerClosedError()
        logits = await client.infer(self.model, batch, timeout=timeout)
        if logits.ndim != 3 or logits.shape[0] != len(batch):
            raise InferenceError(
                f"Triton model {self.model} answered {self._output} {logits.shape}"
            )
        return logits

    def _finished(self, windows: int, seconds: float) -> None:
        self._recorder.batch_finished(windows, seconds)

    # -- health -----------------------------------------------------------------------------------

    def probe(self) -> bool:
        """Probe the pool now (blocking; the watcher does it every ``health_interval_s``)."""
        loop = self._loop
        if loop is None:
            raise SchedulerClosedError()
        return asyncio.run_coroutine_threadsafe(self._probe(), loop).result()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.inference.health_interval_s)
            await self._probe()

    async def _probe(self) -> bool:
        """Probe the pool (:func:`.triton_health.probe`) and record the outcome."""
        problem = await probe(self._client, self.model, self.inference.timeout_s)
        self._health.record(problem)
        return problem is None


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _settle(
    future: Future[Logits], logits: Logits | None = None, *, exc: BaseException | None = None
) -> None:
    """Answer a window's future unless its caller cancelled it."""
    try:
        if exc is not None:
            future.set_exception(exc)
        elif logits is not None:
            future.set_result(logits)
    except concurrent.futures.InvalidStateError:
        pass
