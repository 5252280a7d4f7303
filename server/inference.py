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

import os
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from .ctc import Logits
from .errors import StreamConfigError
from .manifest import Manifest
from .runtime import CPU, Runner, RuntimeConfig, load_runner
from .scheduler import ModelInput, Scheduler, SchedulerConfig, SchedulerObserver, SchedulerStats

LOCAL = "local"
TRITON_SCHEME = "triton"
DEFAULT_TRITON_PORT = 8001
"""Triton's gRPC port."""


class InferenceBackend(Protocol):
    """What streams, the engine and the service's metrics need from where the model runs."""

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


@dataclass(frozen=True)
class InferenceConfig:
    """Where the windows run, and how a remote pool's failures are handled."""

    url: str = LOCAL
    """``local`` (onnxruntime in this process) or ``triton://HOST[:PORT]`` (Triton's gRPC
    endpoint; port 8001 when omitted)."""
    triton_model: str | None = None
    """The Triton model; None: ``triton_contract.model_name(manifest name, precision)``."""
    timeout_s: float = 5.0
    """Deadline of one window's request, its retries included; also of each health probe."""
    retries: int = 2
    """Further attempts of a request the pool answered UNAVAILABLE (within the deadline)."""
    retry_backoff_s: float = 0.05
    """Wait before the first retry; it doubles for each next one."""
    health_interval_s: float = 1.0
    """Seconds between the health watcher's server_ready / model_ready probes."""

    def __post_init__(self) -> None:
        if self.remote:
            triton_address(self.url)
        _check("triton_timeout_s", self.timeout_s, 0.01, 600.0)
        _check("triton_retries", self.retries, 0, 10)
        _check("triton_retry_backoff_s", self.retry_backoff_s, 0.0, 10.0)
        _check("triton_health_interval_s", self.health_interval_s, 0.001, 3600.0)
        if self.triton_model is not None and not self.triton_model.strip():
            raise StreamConfigError("triton_model", self.triton_model, "a Triton model name")

    @property
    def remote(self) -> bool:
        return self.url != LOCAL

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the Triton endpoint, as gRPC takes it."""
        return triton_address(self.url)


def triton_address(url: str) -> str:
    """``triton://HOST[:PORT]`` -> ``HOST:PORT``; raises StreamConfigError."""
    allowed = f"{LOCAL} or {TRITON_SCHEME}://HOST[:PORT]"
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_TRITON_PORT
    except ValueError:
        raise StreamConfigError("inference", url, allowed) from None
    host = parts.hostname
    extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    if parts.scheme != TRITON_SCHEME or not host or extra:
        raise StreamConfigError("inference", url, allowed)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        raise StreamConfigError(name, value, f"{low:g} to {high:g}")


def default_workers(runtime: RuntimeConfig, provider: str) -> int:
    """Scheduler workers that keep the cores busy without oversubscribing them."""
    if provider != CPU or runtime.intra_op_threads == 0:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, (cores or 1) // runtime.intra_op_threads))


def open_backend(
    folder: Path,
    manifest: Manifest,
    runtime: RuntimeConfig,
    scheduler: SchedulerConfig | None,
    inference: InferenceConfig,
) -> tuple[Runner, InferenceBackend]:
    """The runner (what runs a batch; its ``precision`` and ``provider`` name the model) and the
    backend streams submit to, not started. A remote backend opens no onnxruntime session and
    needs no ONNX file: the manifest is enough."""
    if inference.remote:
        from .triton_backend import open_triton  # needs the `triton` extra

        max_queue = (scheduler or SchedulerConfig()).max_queue
        backend = open_triton(manifest, inference, runtime.precision, max_queue)
        return backend, backend
    runner = load_runner(folder, manifest, runtime)
    config = scheduler or SchedulerConfig(workers=default_workers(runtime, runner.provider))
    return runner, LocalScheduler(runner, config)
