"""The Triton inference backend: its request, retry, deadline and health logic, then the real thing.

The first part drives :class:`TritonBackend` with an in-process stand-in for its gRPC
client (the backend's client factory is its seam), so every failure of the pool can be
staged without a network; deadlines that span retries use a fake clock advanced by the backend's
injected sleep. The end-to-end part runs a real local Triton server (``asr-triton``, which skips
without its interpreter, or fails under ``ASR_REQUIRE_TOOLS=1``) behind the real websocket
service, against the local backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import stream_array
from streamasr.server.errors import (
    InferenceError,
    InferenceUnavailableError,
    SchedulerClosedError,
    SchedulerOverloadedError,
    ServerConfigError,
    StreamConfigError,
)
from streamasr.server.inference import triton_contract as tc
from streamasr.server.inference.config import InferenceConfig
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.inference.triton import TritonBackend
from streamasr.server.manifest import read_manifest
from streamasr.server.service.config import load_config
from tests.fakes import FakeClock

from .service_util import (
    STOP,
    Audio,
    Outcome,
    ServerThread,
    as_received,
    chunks,
    encode,
    http_get,
    read_mono,
    server_config,
    start_text,
    stream_v1,
)
from .timeouts import timeout, wait_until
from .triton_util import free_ports, triton_command

URL = "triton://pool.invalid:8001"


class FakeTriton:
    """The gRPC client (``triton_grpc.GrpcTriton``) as the backend calls it; logits (frames 1,
    vocab 2) = (first sample, length) of the window, so a mixed-up answer shows."""

    def __init__(self) -> None:
        self.server_ready = True
        self.model_ready = True
        self.failures: list[str] = []
        """gRPC status names the next infer calls raise, one each."""
        self.hang = False
        self.requests: list[tuple[str, list[int], float]] = []
        """(model, shape, timeout) of every infer call."""
        self.closed = False

    async def infer(
        self, model_name: str, batch: NDArray[np.float32], *, timeout: float
    ) -> NDArray[np.float32]:
        self.requests.append((model_name, list(batch.shape), timeout))
        if self.failures:
            status = self.failures.pop(0)
            raise InferenceServerException(f"staged {status}", status=f"StatusCode.{status}")
        if self.hang:
            await asyncio.Event().wait()
        return np.array([[[w.flat[0], batch.shape[1]]] for w in batch], dtype=np.float32)

    async def is_server_ready(self, *, client_timeout: float) -> bool:
        return self.server_ready

    async def is_model_ready(self, model_name: str, *, client_timeout: float) -> bool:
        return self.model_ready

    async def close(self) -> None:
        self.closed = True


def window(value: float, length: int) -> NDArray[np.float32]:
    return np.full(length, value, dtype=np.float32)


def make_backend(
    fake: FakeTriton, clock: FakeClock | None = None, max_queue: int = 512, **config: Any
) -> TritonBackend:
    settings: dict[str, Any] = {"health_interval_s": 3600.0, **config}
    extra: dict[str, Any] = {}
    if clock is not None:
        extra = {"clock": clock, "sleep": clock.sleep}
    return TritonBackend(
        "audio",
        "logits",
        "fp32",
        InferenceConfig(URL, **settings),
        model="m-fp32",
        max_queue=max_queue,
        client_factory=lambda: fake,
        **extra,
    )


@pytest.fixture
def fake() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
def backend(fake: FakeTriton) -> Iterator[TritonBackend]:
    with make_backend(fake) as backend:
        yield backend


def test_only_batched_precisions_round_gated_runs(fake: FakeTriton) -> None:
    """Triton merges fp32 and fp16 requests, never int8's (max_batch_size 1): a stream's gate
    rounds trimmed runs to few lengths only where they may share a batch."""
    assert make_backend(fake).batched
    config = InferenceConfig(URL, health_interval_s=3600.0)
    int8 = TritonBackend("audio", "logits", "int8", config, model="m-int8")
    assert not int8.batched


# -- requests ---------------------------------------------------------------------------------


def test_one_window_per_request_and_answers_routed(
    fake: FakeTriton, backend: TritonBackend
) -> None:
    futures = [backend.submit(window(float(i), 400 + i)) for i in range(5)]
    for i, future in enumerate(futures):
        np.testing.assert_array_equal(future.result(timeout(10)), [[float(i), 400 + i]])
    assert sorted(shape for _, shape, _ in fake.requests) == [[1, 400 + i] for i in range(5)]
    assert {model for model, _, _ in fake.requests} == {"m-fp32"}
    stats = backend.stats
    assert (stats.batches, stats.windows, dict(stats.batch_sizes)) == (5, 5, {1: 5})
    assert backend.queued == 0


def test_windows_of_one_shape_taken_together_share_a_request(fake: FakeTriton) -> None:
    """fp32 batches: windows queued together go as one request, answers in order; int8 does not
    batch: one request per window."""
    batch = np.stack([window(float(i), 50) for i in range(3)])
    with make_backend(fake) as backend:
        np.testing.assert_array_equal(backend.run(batch), [[[0.0, 50]], [[1.0, 50]], [[2.0, 50]]])
        assert dict(backend.stats.batch_sizes) == {3: 1}
    assert [shape for _, shape, _ in fake.requests] == [[3, 50]]
    fake.requests.clear()
    config = InferenceConfig(URL, health_interval_s=3600.0)
    int8 = TritonBackend(
        "audio", "logits", "int8", config, model="m-int8", client_factory=lambda: fake
    )
    with int8:
        np.testing.assert_array_equal(int8.run(batch), [[[0.0, 50]], [[1.0, 50]], [[2.0, 50]]])
        assert dict(int8.stats.batch_sizes) == {1: 3}
    assert [shape for _, shape, _ in fake.requests] == [[1, 50]] * 3


def test_fbank_windows_keep_their_feature_axis(fake: FakeTriton, backend: TritonBackend) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    backend.submit(rows).result(timeout(10))
    assert fake.requests[0][1] == [1, 3, 4]


def test_run_is_a_blocking_batch(backend: TritonBackend) -> None:
    batch = np.stack([window(1.0, 50), window(2.0, 50)])
    np.testing.assert_array_equal(backend.run(batch), [[[1.0, 50]], [[2.0, 50]]])


def test_unavailable_is_retried_with_backoff(fake: FakeTriton, clock: FakeClock) -> None:
    fake.failures = ["UNAVAILABLE", "UNAVAILABLE"]
    with make_backend(fake, clock, retries=2, retry_backoff_s=0.05) as backend:
        logits = backend.submit(window(3.0, 10)).result(timeout(10))
        assert backend.available
    np.testing.assert_array_equal(logits, [[3.0, 10]])
    assert clock.sleeps == [0.05, 0.1]
    assert len(fake.requests) == 3


def test_retries_run_out_then_the_pool_is_down_until_a_probe_succeeds(
    fake: FakeTriton,
) -> None:
    fake.failures = ["UNAVAILABLE"] * 3
    with make_backend(fake, FakeClock(), retries=2) as backend:
        with pytest.raises(InferenceUnavailableError, match="staged UNAVAILABLE"):
            backend.submit(window(1.0, 10)).result(timeout(10))
        assert not backend.available
        assert backend.problem is not None and "3 attempts" in backend.problem
        with pytest.raises(InferenceUnavailableError, match=URL):
            backend.submit(window(1.0, 10))  # refused at once: the session ends, no hang
        assert backend.probe()
        assert backend.available and backend.problem is None
        backend.submit(window(1.0, 10)).result(timeout(10))


def test_the_deadline_covers_the_retries(fake: FakeTriton, clock: FakeClock) -> None:
    fake.failures = ["UNAVAILABLE"] * 10
    backend = make_backend(fake, clock, timeout_s=1.0, retries=10, retry_backoff_s=0.4)
    with backend, pytest.raises(InferenceUnavailableError, match=r"no reply within 1 s"):
        backend.submit(window(1.0, 10)).result(timeout(10))
    assert clock.sleeps == [0.4, 0.8]
    assert [t for _, _, t in fake.requests] == pytest.approx([1.0, 0.6])


def test_a_pool_that_does_not_answer_fails_the_window_at_the_deadline(
    fake: FakeTriton,
) -> None:
    fake.hang = True
    with make_backend(fake, timeout_s=0.2) as backend:
        started = time.monotonic()
        with pytest.raises(InferenceUnavailableError, match=r"no reply within 0\.2 s"):
            backend.submit(window(1.0, 10)).result(timeout(10))
        assert time.monotonic() - started < timeout(5)
        assert backend.available  # slow is not down: only the watcher decides that
        assert backend.queued == 0


@pytest.mark.parametrize("status", ["DEADLINE_EXCEEDED"])
def test_a_server_deadline_is_the_same_error(fake: FakeTriton, status: str) -> None:
    fake.failures = [status]
    with make_backend(fake) as backend, pytest.raises(InferenceUnavailableError):
        backend.submit(window(1.0, 10)).result(timeout(10))
    assert len(fake.requests) == 1


def test_other_errors_are_internal_and_not_retried(fake: FakeTriton) -> None:
    fake.failures = ["INVALID_ARGUMENT"]
    with make_backend(fake) as backend:
        with pytest.raises(InferenceError) as caught:
            backend.submit(window(1.0, 10)).result(timeout(10))
        assert not isinstance(caught.value, InferenceUnavailableError)
        assert "m-fp32" in str(caught.value)
        assert backend.available
    assert len(fake.requests) == 1


def test_requests_in_flight_are_bounded(fake: FakeTriton) -> None:
    fake.hang = True
    with make_backend(fake, max_queue=2, timeout_s=0.3) as backend:
        first = [backend.submit(window(1.0, 10)) for _ in range(2)]
        assert backend.queued == 2
        with pytest.raises(SchedulerOverloadedError):
            backend.submit(window(1.0, 10))
        for future in first:
            with pytest.raises(InferenceUnavailableError):
                future.result(timeout(10))


def test_stop_finishes_what_is_in_flight_then_refuses(fake: FakeTriton) -> None:
    backend = make_backend(fake)
    backend.start()
    future = backend.submit(window(5.0, 10))
    backend.stop()
    np.testing.assert_array_equal(future.result(0), [[5.0, 10]])
    assert fake.closed
    with pytest.raises(SchedulerClosedError):
        backend.submit(window(1.0, 10))
    backend.stop()  # twice is harmless


def test_observers_get_every_request(fake: FakeTriton, backend: TritonBackend) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.batches: list[tuple[int, float]] = []
            self.depths: list[int] = []

        def batch_finished(self, windows: int, seconds: float) -> None:
            self.batches.append((windows, seconds))

        def queue_changed(self, queued: int) -> None:
            self.depths.append(queued)

    backend.submit(window(1.0, 10)).result(timeout(10))
    recorder = Recorder()
    so_far = backend.add_observer(recorder)
    backend.submit(window(1.0, 10)).result(timeout(10))
    backend.remove_observer(recorder)
    backend.submit(window(1.0, 10)).result(timeout(10))
    assert so_far.windows == 1
    assert [w for w, _ in recorder.batches] == [1]
    assert recorder.depths[0] == 0 and 1 in recorder.depths and recorder.depths[-1] == 0


# -- health -----------------------------------------------------------------------------------


def test_probe_reports_server_and_model_readiness(fake: FakeTriton) -> None:
    fake.server_ready = False
    with make_backend(fake) as backend:
        assert not backend.available
        assert backend.problem == "the server is not ready"
        with pytest.raises(InferenceUnavailableError, match="not ready"):
            backend.submit(window(1.0, 10))
        fake.server_ready, fake.model_ready = True, False
        assert not backend.probe()
        assert backend.problem == "model m-fp32 is not ready"
        fake.model_ready = True
        assert backend.probe()
        assert backend.available


def test_a_failing_probe_call_counts_as_down(fake: FakeTriton) -> None:
    async def refuse(*, client_timeout: float) -> bool:
        raise InferenceServerException("connection refused", status="StatusCode.UNAVAILABLE")

    with make_backend(fake) as backend:
        fake.is_server_ready = refuse  # type: ignore[method-assign]
        assert not backend.probe()
        assert backend.problem == "connection refused"


def test_the_watcher_follows_the_pool(fake: FakeTriton) -> None:
    with make_backend(fake, health_interval_s=0.01) as backend:
        assert backend.available
        fake.server_ready = False
        wait_until(lambda: not backend.available, "the backend to turn unavailable", every=0.005)
        fake.server_ready = True
        wait_until(lambda: backend.available, "the backend to turn available", every=0.005)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("triton://localhost:9001", "localhost:9001"),
        ("triton://10.0.0.7", "10.0.0.7:8001"),
        ("triton://[::1]:8001/", "[::1]:8001"),
    ],
)
def test_triton_urls(url: str, address: str) -> None:
    config = InferenceConfig(url)
    assert config.remote and config.address == address


@pytest.mark.parametrize(
    "url", ["grpc://h:8001", "triton://", "triton://h:70000", "triton://h:1/models", "h:8001"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(StreamConfigError, match="triton://HOST"):
        InferenceConfig(url)


def test_server_flags_and_environment() -> None:
    config = load_config(
        ["--model", "m", "--inference", "triton://t:8001", "--triton-timeout", "2.5"],
        {"ASR_TRITON_MODEL": "custom"},
    )
    inference = config.inference_config()
    assert (inference.url, inference.triton_model, inference.timeout_s) == (
        "triton://t:8001",
        "custom",
        2.5,
    )
    assert not load_config(["--model", "m"], {}).inference_config().remote
    with pytest.raises(ServerConfigError, match="--inference"):
        load_config(["--model", "m", "--inference", "triton:/t"], {})
    with pytest.raises(ServerConfigError, match="--triton-timeout"):
        load_config(["--model", "m", "--inference", "triton://t", "--triton-timeout", "0"], {})


def test_default_timeout_is_a_few_seconds() -> None:
    assert 1.0 <= InferenceConfig().timeout_s <= 10.0
    assert InferenceConfig().retries == 2


# -- end to end: a real local Triton (asr-triton) behind the real websocket service ------------


class LocalTriton:
    """``asr-triton`` in its own process group, so that :meth:`kill` takes Triton and its
    model processes down at once, as a crash would; :meth:`start` again on the same ports."""

    def __init__(self, folder: Path, python: Path, precisions: str) -> None:
        self.grpc_port, http_port, metrics_port = free_ports(3)
        self.args = [str(folder), "--python", str(python), "--precision", precisions]
        self.args += ["--grpc-port", str(self.grpc_port), "--http-port", str(http_port)]
        self.args += ["--metrics-port", str(metrics_port)]
        manifest = read_manifest(folder)
        self.names = [tc.model_name(manifest.name, p) for p in precisions.split(",")]
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        return f"triton://127.0.0.1:{self.grpc_port}"

    def start(self) -> LocalTriton:
        self.process = subprocess.Popen(
            [*triton_command(), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        waiting = {f"serving {name} on grpc" for name in self.names}
        ready = threading.Event()

        def read(stream: Any) -> None:
            nonlocal waiting
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                waiting = {w for w in waiting if w not in line}
                if not waiting:
                    ready.set()
            ready.set()

        threading.Thread(target=read, args=(self.process.stderr,), daemon=True).start()
        if not ready.wait(timeout(90)) or waiting:
            self.kill()
            raise AssertionError("asr-triton did not get ready:\n" + "\n".join(self.lines[-40:]))
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            process.wait(timeout(60))


@pytest.fixture(scope="module")
def triton(fixture_export: Path, triton_python: Path) -> Iterator[LocalTriton]:
    pool = LocalTriton(fixture_export, triton_python, "fp32,int8").start()
    try:
        yield pool
    finally:
        pool.kill(signal.SIGTERM)


def speech(tts_set: list[tuple[Path, str]], count: int) -> list[tuple[Audio, int]]:
    return [read_mono(path) for path, _ in tts_set[:count]]


def run_sessions(server: ServerThread, audio: list[tuple[Audio, int]]) -> list[Outcome]:
    async def all_at_once() -> list[Outcome]:
        url = server.ws_url()
        return list(await asyncio.gather(*(stream_v1(url, a, rate) for a, rate in audio)))

    return asyncio.run(all_at_once())


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_transcripts_through_triton_equal_the_local_backend(
    fixture_export: Path, tts_set: list[tuple[Path, str]], triton: LocalTriton, precision: str
) -> None:
    audio = speech(tts_set, 8)
    with ServerThread(server_config(fixture_export, precision=precision)) as local:
        expected = run_sessions(local, audio)
    remote_config = server_config(fixture_export, precision=precision, inference=triton.url)
    with ServerThread(remote_config) as remote:
        assert remote.engine.scheduler.provider == "triton"
        assert remote.engine.scheduler.precision == precision
        health = http_get(remote.port, "/healthz")
        got = run_sessions(remote, audio)
        windows = remote.engine.scheduler.stats.windows
    assert health.status == 200 and health.json()["provider"] == "triton"
    assert windows > 0
    for want, have in zip(expected, got, strict=True):
        assert have.error is None and have.code == 1000
        assert [m["text"] for m in have.of("final")] == [m["text"] for m in want.of("final")]
        if precision == "int8":  # one window per execution on both sides: identical logits
            assert have.of("final") == want.of("final")
            assert have.of("partial") == want.of("partial")


def test_a_remote_engine_opens_no_model_file(fixture_export: Path, tmp_path: Path) -> None:
    manifest = read_manifest(fixture_export)  # no ONNX model file in tmp_path, only this:
    shutil.copy(fixture_export / "manifest.json", tmp_path / "manifest.json")
    if manifest.vad is not None:  # the voice activity detector runs in the frontend
        shutil.copy(fixture_export / manifest.vad.file, tmp_path / manifest.vad.file)
    url = f"triton://127.0.0.1:{free_ports(1)[0]}"  # nothing listens: the pool is down
    config = EngineConfig(inference=InferenceConfig(url, timeout_s=1.0))
    with Engine(tmp_path, config) as engine:
        assert engine.scheduler.precision == "int8"  # auto, as on a CPU frontend
        assert isinstance(engine.scheduler, TritonBackend)
        assert engine.scheduler.model == tc.model_name(engine.manifest.name, "int8")
        assert not engine.available
        with pytest.raises(InferenceUnavailableError):
            engine.scheduler.submit(window(0.1, 16000))


async def stream_and_kill(url: str, samples: Audio, rate: int, kill: Any) -> Outcome:
    """A real-time-ish v1 session (100 ms frames, 5x real time) that calls ``kill`` once the
    first partial arrived, and keeps sending until the server closes."""
    outcome = Outcome()
    partial = asyncio.Event()
    async with connect(url, compression=None, open_timeout=timeout(30)) as ws:

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for text in ws:
                    message = json.loads(text)
                    outcome.messages.append(message)
                    if message.get("type") == "partial":
                        partial.set()

        reader = asyncio.create_task(read())
        await ws.send(start_text(rate))
        killed = False
        with contextlib.suppress(ConnectionClosed):
            for piece in chunks(encode(samples, "s16le"), rate // 10 * 2):
                await ws.send(piece)
                await asyncio.sleep(0.02)
                if partial.is_set() and not killed:
                    await asyncio.to_thread(kill)
                    killed = True
            await ws.send(STOP)
        await asyncio.wait_for(reader, timeout(60))
        outcome.code = ws.close_code
    return outcome


async def refused_status(url: str) -> int:
    try:
        async with connect(url, open_timeout=timeout(30)):
            pass
    except InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError("the session was accepted")


def test_triton_killed_mid_stream_then_back(
    fixture_export: Path, tts_set: list[tuple[Path, str]], triton_python: Path
) -> None:
    pool = LocalTriton(fixture_export, triton_python, "int8").start()
    config = server_config(fixture_export, inference=pool.url)
    inference = InferenceConfig(pool.url, timeout_s=2.0, health_interval_s=0.2)

    def load() -> Engine:
        return Engine(fixture_export, replace(config.engine_config(), inference=inference))

    audio = speech(tts_set, 8)
    rate = audio[0][1]
    long_speech = np.concatenate([samples for samples, r in audio if r == rate])
    try:
        with ServerThread(config, loader=load) as server:
            assert http_get(server.port, "/healthz").status == 200
            cut = asyncio.run(stream_and_kill(server.ws_url(), long_speech, rate, pool.kill))
            assert cut.of("partial"), "the session streamed through Triton before the kill"
            assert cut.error is not None and cut.error["code"] == "inference_unavailable"
            assert cut.code == 1013

            wait_until(
                lambda: http_get(server.port, "/healthz").status == 503, "/healthz 503", every=0.005
            )
            health = http_get(server.port, "/healthz").json()
            assert health["status"] == "inference_unavailable" and health["error"]
            assert asyncio.run(refused_status(server.ws_url())) == 503

            pool.start()  # the same ports
            wait_until(
                lambda: http_get(server.port, "/healthz").status == 200, "/healthz 200", 30.0, 0.005
            )
            samples, file_rate = audio[1]
            again = asyncio.run(stream_v1(server.ws_url(), samples, file_rate))
            with Engine(fixture_export, EngineConfig(RuntimeConfig(device="cpu"))) as engine:
                local = stream_array(engine, as_received(samples, "s16le"), file_rate)
        assert again.error is None and again.code == 1000
        assert again.text == " ".join(s.text for s in local.segments)
    finally:
        pool.kill()
