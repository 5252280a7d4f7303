"""Where a model's windows run: the inference backend seam between streams and the model.

A :class:`~.stream.Stream` needs one thing from the model: :meth:`InferenceBackend.submit` one
window's input and get a :class:`concurrent.futures.Future` of its logits, which it blocks on
(the blocking API) or awaits with ``asyncio.wrap_future`` (the asyncio API). Two backends do it:

* ``local`` (the embedded default): onnxruntime in this process, windows of many streams
  batched by the :class:`~.scheduler.Scheduler` (:class:`LocalScheduler`).
* ``triton://HOST:PORT``: a Triton Inference Server pool over gRPC
  (:class:`~.triton_backend.TritonBackend`), one window per request, batched across frontends
  by Triton's dynamic batcher. Loaded only when asked for (it needs the ``triton`` extra).

Both report the same statistics to the same observers (the service's metrics) and say whether
they can take windows now (:attr:`InferenceBackend.available`: always for ``local``; for Triton,
what its health watcher saw last).
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

from streamasr.server.arrays import Logits
from streamasr.server.inference.config import InferenceConfig, default_workers
from streamasr.server.inference.runtime import RuntimeConfig, load_runner
from streamasr.server.inference.scheduler import ModelInput, Scheduler, SchedulerConfig
from streamasr.server.inference.stats import SchedulerObserver, SchedulerStats
from streamasr.server.manifest import Manifest


class InferenceBackend(Protocol):
    """What streams, the engine and the service's metrics need from where the model runs."""

    @property
    def precision(self) -> str:
        """The model file that runs (``fp32``, ``fp16``, ``int8``)."""

    @property
    def provider(self) -> str:
        """Where it runs: an onnxruntime provider, or ``triton``."""

    @property
    def config(self) -> SchedulerConfig:
        """Batching and queue limits (for Triton: one window per request, ``max_queue``)."""

    @property
    def stats(self) -> SchedulerStats:
        """Counts since start, one consistent snapshot."""

    @property
    def queued(self) -> int:
        """Windows submitted and not answered yet."""

    @property
    def batched(self) -> bool:
        """Whether windows of equal length from several streams run together (a stream's gate
        then rounds its trimmed runs to few lengths); False: each window runs alone."""

    @property
    def available(self) -> bool:
        """Whether windows can be run now (False while a remote pool is unreachable)."""

    @property
    def problem(self) -> str | None:
        """Why the backend is unavailable, when it is."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Finish what was submitted, then stop; later submits raise SchedulerClosedError."""

    def submit(self, data: ModelInput) -> Future[Logits]:
        """One window's model input (no batch axis) -> the future of its (frames, vocab)
        logits. Raises SchedulerClosedError, SchedulerOverloadedError, or (remote) an
        InferenceUnavailableError while the pool is unavailable."""

    def add_observer(self, observer: SchedulerObserver) -> SchedulerStats: ...

    def remove_observer(self, observer: SchedulerObserver) -> None: ...


class LocalScheduler(Scheduler):
    """The embedded backend: the batching scheduler over an onnxruntime runner."""

    @property
    def available(self) -> bool:
        return True

    @property
    def problem(self) -> str | None:
        return None


def open_backend(
    folder: Path,
    manifest: Manifest,
    runtime: RuntimeConfig,
    scheduler: SchedulerConfig | None,
    inference: InferenceConfig,
) -> InferenceBackend:
    """The backend streams submit to (its ``precision`` and ``provider`` name the model), not
    started. A remote backend opens no onnxruntime session and
    needs no ONNX file: the manifest is enough."""
    if inference.remote:
        from streamasr.server.inference.triton import open_triton

        max_queue = (scheduler or SchedulerConfig()).max_queue
        return open_triton(manifest, inference, runtime.precision, max_queue)
    runner = load_runner(folder, manifest, runtime)
    config = scheduler or SchedulerConfig(workers=default_workers(runtime, runner.provider))
    return LocalScheduler(runner, config)
