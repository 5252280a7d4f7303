"""The service's metrics on prometheus_client: names, labels and values as a scraper parses them,
the scheduler followed through its observer, and sums across worker processes (multiprocess mode).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from streamasr.server.errors import ServerConfigError
from streamasr.server.inference.scheduler import Scheduler, SchedulerConfig
from streamasr.server.service.metrics import (
    CONTENT_TYPE,
    MULTIPROC_ENV,
    ServiceMetrics,
    prepare_multiprocess_dir,
    worker_exited,
)

from .metrics_util import Samples, metric, parse_exposition

if TYPE_CHECKING:
    from streamasr.server.engine.engine import Engine


def test_events_are_exported_under_prometheus_names() -> None:
    metrics = ServiceMetrics()
    metrics.session_opened("v1")
    metrics.session_opened("v1")
    metrics.session_opened("vosk")
    metrics.session_closed("v1")
    metrics.audio_received(1.25)
    metrics.audio_received(0.5)
    for latency in (0.02, 0.3, 20.0):
        metrics.partial_sent(latency)
    metrics.final_sent(0.4)
    metrics.lagged()
    metrics.session_error("invalid_field")
    metrics.upgrade_rejected(503)
    metrics.connection_dropped("write_limit")
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    assert families["asr_sessions"].type == "counter"
    assert families["asr_sessions_active"].type == "gauge"
    assert families["asr_partial_latency_seconds"].type == "histogram"
    s = parse_exposition(metrics.render())
    assert metric(s, "asr_sessions_total", protocol="v1") == 2
    assert metric(s, "asr_sessions_total", protocol="vosk") == 1
    assert metric(s, "asr_sessions_active", protocol="v1") == 1
    assert metric(s, "asr_audio_seconds_total") == pytest.approx(1.75)
    assert metric(s, "asr_partial_latency_seconds_bucket", le="0.025") == 1
    assert metric(s, "asr_partial_latency_seconds_bucket", le="10.0") == 2
    assert metric(s, "asr_partial_latency_seconds_bucket", le="+Inf") == 3
    assert metric(s, "asr_partial_latency_seconds_sum") == pytest.approx(20.32)
    assert metric(s, "asr_final_latency_seconds_count") == 1
    assert metric(s, "asr_lag_events_total") == 1
    assert metric(s, "asr_errors_total", code="invalid_field") == 1
    assert metric(s, "asr_http_rejections_total", status="503") == 1
    assert metric(s, "asr_connections_dropped_total", reason="write_limit") == 1


def test_content_type_is_what_prometheus_client_serves_by_default() -> None:
    assert choose_encoder("")[1] == CONTENT_TYPE


def test_two_services_in_one_process_keep_their_own_counts() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.session_opened("v1")
    assert metric(parse_exposition(first.render()), "asr_sessions_total", protocol="v1") == 1
    assert metric(parse_exposition(second.render()), "asr_sessions_total", protocol="v1") == 0


# -- the engine and its scheduler -----------------------------------------------------------------


class ZeroRunner:
    provider = "test"
    precision = "fp32"
    batched = True

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.zeros((batch.shape[0], 1, 2), np.float32)


@dataclass
class FakeEngine:
    """What ServiceMetrics reads of an engine: its name, runner and scheduler."""

    scheduler: Scheduler
    runner: ZeroRunner = field(default_factory=ZeroRunner)
    manifest: object = field(default_factory=type("M", (), {"name": "tiny"}))


def test_the_scheduler_is_followed_from_before_the_engine_was_attached() -> None:
    metrics = ServiceMetrics()
    config = SchedulerConfig(max_batch=4, max_wait_ms=1, workers=3)
    with Scheduler(ZeroRunner(), config) as scheduler:
        engine = cast("Engine", FakeEngine(scheduler))
        for future in [scheduler.submit(np.zeros(16, np.float32)) for _ in range(7)]:
            future.result()
        metrics.attach_engine(engine)
        futures = [scheduler.submit(np.zeros(n, np.float32)) for n in (8, 16) * 50]
        for future in futures:
            future.result()
        stats = scheduler.stats
        s = parse_exposition(metrics.render())
        metrics.detach_engine(engine)
    assert stats.windows == 107
    assert metric(s, "asr_scheduler_windows_total") == stats.windows
    assert metric(s, "asr_scheduler_batches_total") == stats.batches
    assert metric(s, "asr_scheduler_batch_size_windows_count") == stats.batches
    assert metric(s, "asr_scheduler_batch_size_windows_sum") == stats.windows
    assert metric(s, "asr_scheduler_busy_seconds_total") == pytest.approx(stats.busy_s)
    singles = stats.batch_sizes.get(1, 0)
    assert metric(s, "asr_scheduler_batch_size_windows_bucket", le="1.0") == singles
    assert metric(s, "asr_scheduler_queued_windows") == 0
    assert metric(s, "asr_model_loaded") == 1
    info = {"model": "tiny", "precision": "fp32", "provider": "test"}
    assert metric(s, "asr_model_info", **info) == 1
    assert metric(parse_exposition(metrics.render()), "asr_model_loaded") == 0


# -- several worker processes ---------------------------------------------------------------------

WORKER = """
import sys
from types import SimpleNamespace
from streamasr.server.service.metrics import ServiceMetrics
from streamasr.server.inference.scheduler import Scheduler

metrics = ServiceMetrics()
engine = SimpleNamespace(
    manifest=SimpleNamespace(name="tiny"),
    scheduler=Scheduler(SimpleNamespace(precision="fp32", provider="test")),
)
opened, closed, audio, batch, queued = sys.argv[1:]
for protocol in filter(None, opened.split(",")):
    metrics.session_opened(protocol)
for protocol in filter(None, closed.split(",")):
    metrics.session_closed(protocol)
metrics.audio_received(float(audio))
metrics.partial_sent(0.1)
for line in sys.stdin:
    if line.strip() == "load":
        metrics.attach_engine(engine)
        metrics.batch_finished(int(batch), 0.25)
        metrics.queue_changed(int(queued))
    else:
        sys.stdout.write(metrics.render())
    print("# done", flush=True)
"""


class Worker:
    """A Python process that records metrics into the multiprocess folder, on command."""

    def __init__(self, folder: Path, *args: str) -> None:
        env = {**os.environ, MULTIPROC_ENV: str(folder)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.pid = self.process.pid

    def ask(self, command: str) -> str:
        stdin, stdout = cast(IO[str], self.process.stdin), cast(IO[str], self.process.stdout)
        stdin.write(command + "\n")
        stdin.flush()
        lines = []
        while (line := stdout.readline()) != "# done\n":
            if not line:
                raise AssertionError(f"worker {self.pid} exited with {self.process.wait()}")
            lines.append(line)
        return "".join(lines)

    def scrape(self) -> Samples:
        return parse_exposition(self.ask("render"))

    def exit(self) -> None:
        cast(IO[str], self.process.stdin).close()
        assert self.process.wait() == 0


def test_worker_processes_are_summed_and_dead_ones_leave_the_live_gauges(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    stale = Worker(folder, "v1,v1,v1", "", "100", "1", "0")  # a previous run's values
    stale.ask("load")
    stale.exit()
    prepare_multiprocess_dir(folder)
    a = Worker(folder, "v1,v1", "v1", "1.5", "3", "4")
    b = Worker(folder, "v1,vosk", "", "2.0", "5", "1")
    a.ask("load")
    s = b.scrape()  # b has not loaded its model yet
    assert metric(s, "asr_sessions_total", protocol="v1") == 3
    assert metric(s, "asr_sessions_total", protocol="vosk") == 1
    assert metric(s, "asr_sessions_active", protocol="v1") == 2
    assert metric(s, "asr_audio_seconds_total") == pytest.approx(3.5)
    assert metric(s, "asr_partial_latency_seconds_count") == 2
    assert metric(s, "asr_scheduler_batches_total") == 1
    assert metric(s, "asr_scheduler_queued_windows") == 4
    assert metric(s, "asr_model_loaded") == 0  # not every worker serves yet
    assert metric(s, "asr_model_info", model="tiny", precision="fp32", provider="test") == 1
    b.ask("load")
    s = a.scrape()
    assert metric(s, "asr_model_loaded") == 1
    assert metric(s, "asr_scheduler_batches_total") == 2
    assert metric(s, "asr_scheduler_windows_total") == 8
    assert metric(s, "asr_scheduler_batch_size_windows_bucket", le="4.0") == 1
    assert metric(s, "asr_scheduler_batch_size_windows_sum") == 8
    assert metric(s, "asr_scheduler_busy_seconds_total") == pytest.approx(0.5)
    assert metric(s, "asr_scheduler_queued_windows") == 5
    a.exit()
    worker_exited(a.pid, folder)
    s = b.scrape()
    assert metric(s, "asr_sessions_active", protocol="v1") == 1  # a's open session is gone
    assert metric(s, "asr_sessions_active", protocol="vosk") == 1
    assert metric(s, "asr_scheduler_queued_windows") == 1
    assert metric(s, "asr_sessions_total", protocol="v1") == 3  # counters never go down
    assert metric(s, "asr_scheduler_windows_total") == 8
    b.exit()


def test_multiprocess_dir_set_too_late_or_wrong_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process imported prometheus_client without the variable: values stay in memory.
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with pytest.raises(ServerConfigError, match="before"):
        ServiceMetrics()
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "missing"))
    with pytest.raises(ServerConfigError, match="not a folder"):
        ServiceMetrics()
