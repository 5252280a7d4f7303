"""The service's Prometheus metrics, on prometheus_client.

Each :class:`ServiceMetrics` owns its :class:`~prometheus_client.CollectorRegistry` (never the
library's global default registry), so two services in one process do not collide. The service
and its sessions report events through its methods; ``GET /metrics`` serves :meth:`render`
(``generate_latest``, text format 0.0.4). Names follow Prometheus conventions: base units in the
name (``_seconds``, ``_windows``), ``_total`` on counters; they are listed in docs/protocol.md.

The scheduler's statistics arrive as events: ServiceMetrics is a
:class:`~.scheduler.SchedulerObserver`, told of every finished batch (counters and a histogram,
thread-safe in prometheus_client) and of every change of the queue's depth (a gauge). Nothing is
collected from live objects at scrape time, because in multiprocess mode a scrape reads only the
files every worker wrote, so state held in another process's objects would be invisible.

Several worker processes (prometheus_client's multiprocess mode): when
``PROMETHEUS_MULTIPROC_DIR`` is set in the environment *before* prometheus_client is imported
(that is, before a worker process starts), every process writes its values to files in that
folder and :meth:`ServiceMetrics.render` reports the sums over all of them through
:class:`~prometheus_client.multiprocess.MultiProcessCollector`, whichever worker the scrape
reaches. Gauges declare how they combine: ``livesum`` for sessions and queued windows,
``livemin`` for ``asr_model_loaded`` (1 once every worker serves), ``livemax`` for the model's
info. The parent process that starts the workers must

- call :func:`prepare_multiprocess_dir` before starting any worker (a previous run's files would
  otherwise be summed in), and
- call :func:`worker_exited` with the pid of every worker that exits or dies, so that its live
  gauges (its open sessions, its queue) leave the sums; its counters stay, as counters must.

One ServiceMetrics per process in that mode: values are keyed by metric name in the process's
files, so a second instance would write over the first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from streamasr.server.errors import ServerConfigError

if TYPE_CHECKING:
    from streamasr.server.engine.engine import Engine

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes (prometheus_client's answer when no format is asked for)."""
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that switches prometheus_client to multiprocess mode."""

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds."""
SIZE_BUCKETS: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
"""Windows per batch (the scheduler's ``max_batch`` is at most 256)."""
PROTOCOLS: Final = ("v1", "vosk", "realtime")


def multiprocess_dir() -> Path | None:
    """The multiprocess folder this process writes to, or None in single-process mode.

    Raises :class:`~.errors.ServerConfigError` when ``PROMETHEUS_MULTIPROC_DIR`` names no
    folder, or was set only after prometheus_client had been imported (values would then stay
    in this process and the sums would silently leave it out)."""
    value = os.environ.get(MULTIPROC_ENV)
    if not value:
        return None
    if not Path(value).is_dir():
        raise ServerConfigError(MULTIPROC_ENV, value, "not a folder")
    if not getattr(prometheus_values.ValueClass, "_multiprocess", False):
        raise ServerConfigError(
            MULTIPROC_ENV, value, "set after prometheus_client was imported; set it before start"
        )
    return Path(value)


def prepare_multiprocess_dir(path: Path | str) -> None:
    """For the parent, before it starts workers: create the folder and delete old values."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()


def worker_exited(pid: int, path: Path | str | None = None) -> None:
    """For the parent, when worker ``pid`` has exited: drop its live gauges from the sums."""
    folder = None if path is None else str(path)
    mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]  # untyped in the library


class ServiceMetrics:
    """The websocket service's metrics (names documented in docs/protocol.md)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        """Where this instance's metrics live (in multiprocess mode: written to files too)."""
        self.multiprocess_dir = multiprocess_dir()
        self._exposed = self.registry
        if self.multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            folder = str(self.multiprocess_dir)
            MultiProcessCollector(self._exposed, folder)  # type: ignore[no-untyped-call]
        self._session_metrics()
        self._model_metrics()
        self._scheduler_metrics()
        for protocol in PROTOCOLS:  # export the zeros before the first session
            self.sessions_active.labels(protocol=protocol)
            self.sessions_total.labels(protocol=protocol)

    def _session_metrics(self) -> None:
        r = self.registry
        self.sessions_active = Gauge(
            "asr_sessions_active",
            "Websocket sessions open now.",
            ["protocol"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.sessions_total = Counter(
            "asr_sessions_total", "Websocket sessions opened.", ["protocol"], registry=r
        )
        self.audio_seconds = Counter(
            "asr_audio_seconds_total", "Seconds of audio received from clients.", registry=r
        )
        self.partial_latency = Histogram(
            "asr_partial_latency_seconds",
            "From receiving the frame that completed a window to sending its partial.",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.final_latency = Histogram(
            "asr_final_latency_seconds",
            "From receiving the frame (or stop) that ended a segment to sending its final.",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.lag_events = Counter(
            "asr_lag_events_total",
            "Streams that fell behind real time (lagging messages).",
            registry=r,
        )
        self.errors = Counter(
            "asr_errors_total", "Sessions ended by an error, by error code.", ["code"], registry=r
        )
        self.rejected = Counter(
            "asr_http_rejections_total",
            "Websocket upgrades refused, by HTTP status.",
            ["status"],
            registry=r,
        )
        self.dropped = Counter(
            "asr_connections_dropped_total",
            "Connections the server closed to protect itself, by reason.",
            ["reason"],
            registry=r,
        )

    def _model_metrics(self) -> None:
        self.model_loaded = Gauge(
            "asr_model_loaded",
            "1 once the model is loaded and serving (in every worker process).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.model_info = Gauge(
            "asr_model_info",
            "The served model: 1, with labels that name it.",
            ["model", "precision", "provider"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.model_loaded.set(0)

    def _scheduler_metrics(self) -> None:
        r = self.registry
        self.batches = Counter(
            "asr_scheduler_batches_total", "Inference calls (batches) run.", registry=r
        )
        self.windows = Counter(
            "asr_scheduler_windows_total", "Windows run through the model.", registry=r
        )
        self.busy_seconds = Counter(
            "asr_scheduler_busy_seconds_total", "Seconds spent inside the model.", registry=r
        )
        self.batch_size = Histogram(
            "asr_scheduler_batch_size_windows",
            "Windows per inference call.",
            registry=r,
            buckets=SIZE_BUCKETS,
        )
        self.queued = Gauge(
            "asr_scheduler_queued_windows",
            "Windows waiting for inference now.",
            registry=r,
            multiprocess_mode="livesum",
        )

    # -- the events the service reports (the one interface the service and sessions use) ------

    def session_opened(self, protocol: str) -> None:
        self.sessions_total.labels(protocol=protocol).inc()
        self.sessions_active.labels(protocol=protocol).inc()

    def session_closed(self, protocol: str) -> None:
        self.sessions_active.labels(protocol=protocol).dec()

    def audio_received(self, seconds: float) -> None:
        self.audio_seconds.inc(seconds)

    def partial_sent(self, latency_s: float) -> None:
        self.partial_latency.observe(latency_s)

    def final_sent(self, latency_s: float) -> None:
        self.final_latency.observe(latency_s)

    def lagged(self) -> None:
        self.lag_events.inc()

    def session_error(self, code: str) -> None:
        self.errors.labels(code=code).inc()

    def upgrade_rejected(self, status: int) -> None:
        self.rejected.labels(status=str(status)).inc()

    def connection_dropped(self, reason: str) -> None:
        """The transport closed a connection (a short fixed word: ``write_limit``,
        ``too_slow``, ``handshake_timeout``...; never a client-supplied value)."""
        self.dropped.labels(reason=reason).inc()

    # -- the engine -----------------------------------------------------------------------------

    def attach_engine(self, engine: Engine) -> None:
        """The model is loaded: name it and follow its scheduler from now on."""
        runner = engine.scheduler
        self.model_info.labels(
            model=engine.manifest.name, precision=runner.precision, provider=runner.provider
        ).set(1)
        so_far = engine.scheduler.add_observer(self)
        self.batches.inc(so_far.batches)
        self.windows.inc(so_far.windows)
        self.busy_seconds.inc(so_far.busy_s)
        for size, count in so_far.batch_sizes.items():
            for _ in range(count):
                self.batch_size.observe(size)
        self.model_loaded.set(1)

    def detach_engine(self, engine: Engine) -> None:
        """The model is closing: no longer serving."""
        self.model_loaded.set(0)
        engine.scheduler.remove_observer(self)

    # -- SchedulerObserver (called from the scheduler's threads) ----------------------------------

    def batch_finished(self, windows: int, seconds: float) -> None:
        self.batches.inc()
        self.windows.inc(windows)
        self.busy_seconds.inc(seconds)
        self.batch_size.observe(windows)

    def queue_changed(self, queued: int) -> None:
        self.queued.set(queued)

    # -- exposition -------------------------------------------------------------------------------

    def render(self) -> str:
        """The exposition for ``GET /metrics`` (all worker processes in multiprocess mode)."""
        return generate_latest(self._exposed).decode("utf-8")
