"""``asr-server --workers 2`` as a process: the same transcripts as one worker, both workers
serving, metrics and ``/healthz`` over both, a killed worker restarted, SIGTERM draining all."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .service_util import (
    Outcome,
    ServerThread,
    converse,
    encode,
    http_get,
    metric,
    parse_exposition,
    read_mono,
    server_config,
    start_text,
    stream_v1,
)
from .test_service_cli import ServerProcess
from .timeouts import timeout, wait_until

SESSIONS = 16
Speech = list[tuple[np.ndarray[Any, np.dtype[np.float32]], int]]


@pytest.fixture(scope="module")
def speech(shared_dir: Path) -> Speech:
    folder = shared_dir / "speech" / "dev" / "tts"
    return [read_mono(folder / f"tts-{i:03d}.flac") for i in range(SESSIONS)]


async def all_sessions(url: str, speech: Speech) -> list[Outcome]:
    """Every recording as a concurrent v1 session, in 100 ms chunks 20 ms apart."""
    return list(await asyncio.gather(*(stream_v1(url, s, r, pace_s=0.02) for s, r in speech)))


@pytest.fixture(scope="module")
def one_worker_texts(fixture_export: Path, speech: Speech) -> list[str]:
    """The transcripts of the single-process server (in a thread, same settings)."""
    with ServerThread(server_config(fixture_export)) as server:
        outcomes = asyncio.run(all_sessions(server.ws_url(), speech))
    assert all(o.code == 1000 for o in outcomes), [o.messages[-1:] for o in outcomes]
    return [o.text for o in outcomes]


@pytest.fixture
def two_workers(fixture_export: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        ["--port", "0", "--device", "cpu", "--workers", "2", "--log-level", "INFO"],
        env={"ASR_MODEL": str(fixture_export)},
    )
    try:
        wait_health(process.wait_listening(), lambda h: h["workers_ready"] == 2)
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout(30))


def wait_health(port: int, done: Callable[[dict[str, Any]], bool], seconds: float = 60) -> Any:
    """Poll ``/healthz`` until ``done(payload)``; the last payload."""
    deadline = time.monotonic() + timeout(seconds)
    payload: Any = None
    while time.monotonic() < deadline:
        reply = http_get(port, "/healthz")
        payload = reply.json()
        if "workers" in payload and done(payload):
            return payload
        time.sleep(0.05)
    raise AssertionError(f"/healthz never got there: {payload}")


def test_two_workers_serve_like_one(
    two_workers: ServerProcess, speech: Speech, one_worker_texts: list[str]
) -> None:
    port = two_workers.wait_listening()
    outcomes = asyncio.run(all_sessions(f"ws://127.0.0.1:{port}/v1/stream", speech))
    assert [o.code for o in outcomes] == [1000] * SESSIONS
    assert [o.text for o in outcomes] == one_worker_texts
    health = wait_health(  # a worker's record is refreshed within a second
        port, lambda h: sum(w["served"] for w in h["workers"]) == SESSIONS and not h["sessions"]
    )
    served = {w["pid"]: w["served"] for w in health["workers"]}
    assert len(served) == 2 and all(n > 0 for n in served.values()), health
    assert health["status"] == "ok"
    samples = parse_exposition(http_get(port, "/metrics").body.decode())
    assert metric(samples, "asr_sessions_total", protocol="v1") == SESSIONS
    assert metric(samples, "asr_sessions_active", protocol="v1") == 0


def test_a_killed_worker_is_restarted_and_the_other_serves(
    two_workers: ServerProcess, speech: Speech, one_worker_texts: list[str]
) -> None:
    port = two_workers.wait_listening()
    before = wait_health(port, lambda h: h["workers_ready"] == 2)
    victim, survivor = before["workers"][0]["pid"], before["workers"][1]["pid"]
    os.kill(victim, signal.SIGKILL)
    # sessions opened now go to the survivor, or wait for the victim's replacement
    outcomes = asyncio.run(all_sessions(f"ws://127.0.0.1:{port}/v1/stream", speech[:8]))
    assert [o.text for o in outcomes] == one_worker_texts[:8]
    after = wait_health(port, lambda h: h["workers_ready"] == 2)
    pids = [w["pid"] for w in after["workers"]]
    assert pids[1] == survivor and pids[0] not in (victim, survivor)
    assert two_workers.process.poll() is None
    assert "restarting in" in "\n".join(two_workers.lines)
    samples = parse_exposition(http_get(port, "/metrics").body.decode())
    assert metric(samples, "asr_sessions_active", protocol="v1") == 0


def test_workers_exit_when_the_parent_is_killed(two_workers: ServerProcess) -> None:
    """SIGKILL gives the parent no chance to forward anything: the kernel's parent-death signal
    makes each worker drain and exit, so no orphan keeps the port."""
    port = two_workers.wait_listening()
    pids = [w["pid"] for w in wait_health(port, lambda h: h["workers_ready"] == 2)["workers"]]
    two_workers.process.kill()
    two_workers.process.wait(timeout(30))
    wait_until(lambda: not any(_running(pid) for pid in pids), "the workers to exit", 30.0)


def audio_received(port: int) -> float:
    """Seconds of audio the workers have read from their clients, all workers together."""
    samples = parse_exposition(http_get(port, "/metrics").body.decode())
    return metric(samples, "asr_audio_seconds_total")


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited one not yet reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sigterm_drains_every_worker(
    two_workers: ServerProcess, speech: Speech, fixture_export: Path
) -> None:
    port = two_workers.wait_listening()
    url = f"ws://127.0.0.1:{port}/v1/stream"

    async def drain() -> list[Outcome]:
        connected = [asyncio.Event() for _ in speech]
        tasks = [
            asyncio.create_task(converse(url, [start_text(r), encode(s, "s16le")], connected=c))
            for (s, r), c in zip(speech, connected, strict=True)
        ]
        await asyncio.gather(*(c.wait() for c in connected))
        await asyncio.to_thread(
            wait_health,
            port,
            lambda h: h["sessions"] == SESSIONS and all(w["sessions"] for w in h["workers"]),
        )
        # Open sessions are not enough: a session's audio may still be on its way, and audio the
        # server has not received has no final to flush. Each recording is one message of more
        # than a second, which the server counts in /metrics as soon as it reads it.
        sent = sum(len(s) / r for s, r in speech)
        await asyncio.to_thread(
            wait_until, lambda: audio_received(port) >= sent - 1e-6, "every session's audio", 60.0
        )
        two_workers.process.send_signal(signal.SIGTERM)
        return list(await asyncio.gather(*tasks))

    outcomes = asyncio.run(drain())
    code = two_workers.process.wait(timeout(60))
    two_workers.stop()
    log = "\n".join(two_workers.lines)
    assert code == 0, log
    for outcome in outcomes:
        assert outcome.code == 1001, outcome.messages
        assert outcome.of("final"), outcome.messages
        assert outcome.error is not None and outcome.error["code"] == "shutting_down"
    assert log.count("server stopped") == 2 and "all workers stopped" in log
