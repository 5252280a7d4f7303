"""Bad input and session limits: each gets its documented error and close code, and a healthy
session running at the same time on the same server gets exactly its reference transcript."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .service_util import (
    HEALTHY_RATE,
    STOP,
    Audio,
    Outcome,
    Pause,
    ServerThread,
    converse,
    encode,
    healthy_speech,
    http_get,
    metric,
    parse_exposition,
    resample,
    server_config,
    start_text,
    stream_healthy,
)

IDLE_S = 1.0
MAX_SESSION_S = 4.0
MAX_MESSAGE = 64 * 1024
MIN_AUDIO_WINDOW_S = 1.0
"""With the default --min-audio (0.5 s): a session must send half a second of audio per second."""
BATCH_WAIT_MS = 50.0
"""A window waits this long for batch mates: the flush after ``stop`` then takes at least that
long, so a frame the client sends right after ``stop`` reliably arrives before ``end``."""


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    config = server_config(
        fixture_export,
        max_wait_ms=BATCH_WAIT_MS,
        idle_timeout_s=IDLE_S,
        max_session_s=MAX_SESSION_S,
        max_message_bytes=MAX_MESSAGE,
        min_audio_window_s=MIN_AUDIO_WINDOW_S,
    )
    assert config.min_audio_s == 0.5
    with ServerThread(config) as running:
        yield running


@pytest.fixture(scope="module")
def speech(shared_dir: Path) -> Audio:
    return healthy_speech(shared_dir)


@pytest.fixture(scope="module")
def reference(server: ServerThread, speech: Audio) -> list[dict[str, Any]]:
    """The healthy session's finals when it runs alone."""
    outcome = asyncio.run(stream_healthy(server.ws_url(), speech))
    assert outcome.code == 1000 and outcome.of("final")
    return outcome.of("final")


async def beside_healthy(server: ServerThread, speech: Audio, bad: Any) -> tuple[Outcome, Outcome]:
    """Run the ``bad`` coroutine while a healthy session streams (connected first)."""
    connected = asyncio.Event()
    good = asyncio.create_task(stream_healthy(server.ws_url(), speech, connected=connected))
    await connected.wait()
    outcome: Outcome = await bad
    return outcome, await good


def check_healthy(good: Outcome, reference: list[dict[str, Any]]) -> None:
    assert good.code == 1000, good.messages[-2:]
    assert good.error is None
    assert good.of("final") == reference


def errors_seen(server: ServerThread, code: str) -> float:
    exposition = parse_exposition(http_get(server.port, "/metrics").body.decode())
    return metric(exposition, "asr_errors_total", code=code)


S16 = encode(np.zeros(1600, dtype=np.float32), "s16le")
SPEECH16 = b"<1 s of speech>"
"""Stands for 1 s of 16 kHz speech in a case (filled in by the test): the last window before
``stop`` then runs the model (the gate would skip silence)."""
NAN = struct.pack("<4f", 0.0, math.nan, 0.0, 0.0)
START16 = start_text(16000)

HUGE = "1" + "0" * 5000
"""A 5,000-digit integer (past Python's int-conversion limit of 4,300 digits)."""

CASES: dict[str, tuple[str, list[str | bytes], str, int]] = {
    # name: (path, messages, error code, close code). The ordering and field rules are unit
    # tests of the conversations (tests/test_conversation.py); these check them on the wire,
    # beside a healthy session: one per close code and each way an error reaches a session
    # (parsing, the state machine, the flush after stop, the engine, the root path's dialect).
    "not_json": ("/v1/stream", ["hello"], "invalid_json", 1007),
    "unknown_type": ("/v1/stream", ['{"type": "pause"}'], "unknown_type", 1003),
    "endpoint_out_of_range": (
        "/v1/stream",
        [start_text(16000, endpoint_ms=50)],
        "invalid_field",
        1007,
    ),
    "huge_integer": ("/v1/stream", [START16[:-1] + f', "speed": {HUGE}}}'], "invalid_field", 1007),
    "rate_too_low": ("/v1/stream", [start_text(7999)], "unsupported_rate", 1003),
    "audio_before_start": ("/v1/stream", [S16], "audio_before_start", 1003),
    "second_start": ("/v1/stream", [START16, S16, START16], "duplicate_start", 1003),
    "audio_after_stop": (
        "/v1/stream",
        [START16, SPEECH16, STOP, S16],
        "audio_after_stop",
        1003,
    ),
    "text_after_stop": (
        "/v1/stream",
        [START16, SPEECH16, STOP, STOP],
        "message_after_stop",
        1003,
    ),
    "odd_bytes_s16": ("/v1/stream", [START16, S16, b"\x00\x01\x02"], "bad_audio", 1007),
    "nan_samples": ("/v1/stream", [start_text(16000, "f32le"), NAN], "bad_audio", 1007),
    "empty_frame": ("/v1/stream", [START16, b""], "empty_frame", 1007),
    "vosk_rate": ("/vosk", ['{"config": {"sample_rate": 4000}}'], "unsupported_rate", 1003),
    "vosk_huge_integer": (
        "/vosk",
        [f'{{"config": {{"sample_rate": {HUGE}}}}}'],
        "invalid_field",
        1007,
    ),
    "vosk_odd_bytes": ("/vosk", [b"\x00\x01\x02"], "bad_audio", 1007),
    "root_bad_start": ("/", [start_text(16000, channels=0)], "invalid_field", 1007),
    "root_huge_integer": ("/", [START16[:-1] + f', "channels": {HUGE}}}'], "invalid_field", 1007),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(
    server: ServerThread,
    speech: Audio,
    reference: list[dict[str, Any]],
    case: str,
) -> None:
    path, messages, code, close = CASES[case]
    speech16 = encode(resample(speech, HEALTHY_RATE, 16000)[:16000], "s16le")
    messages = [speech16 if m is SPEECH16 else m for m in messages]
    before = errors_seen(server, code)
    bad, good = asyncio.run(beside_healthy(server, speech, converse(server.ws_url(path), messages)))
    assert bad.error is not None, bad.messages
    assert bad.error["code"] == code, bad.error
    assert bad.error["message"]
    assert (bad.code, bad.reason) == (close, code)
    assert bad.messages[-1] == bad.error, "the error is the last message"
    check_healthy(good, reference)
    assert errors_seen(server, code) == before + 1


def test_vosk_bad_input_after_audio_gets_no_extra_reply(server: ServerThread) -> None:
    """Each good frame gets its one reply; the bad frame gets the error, then the close."""
    outcome = asyncio.run(converse(server.ws_url("/vosk"), [S16, S16, b"\x01"]))
    assert [list(m) for m in outcome.messages[:2]] == [["partial"], ["partial"]]
    assert outcome.error is not None and outcome.error["code"] == "bad_audio"
    assert outcome.code == 1007


def test_message_too_big(
    server: ServerThread, speech: Audio, reference: list[dict[str, Any]]
) -> None:
    before = errors_seen(server, "message_too_big")
    big = bytes(MAX_MESSAGE + 2)
    bad, good = asyncio.run(
        beside_healthy(server, speech, converse(server.ws_url(), [START16, big]))
    )
    assert bad.code == 1009
    assert str(MAX_MESSAGE) in bad.reason
    assert bad.error is None, "websockets fails the connection: no error message"
    check_healthy(good, reference)
    assert errors_seen(server, "message_too_big") == before + 1


def test_idle_timeout_before_start(
    server: ServerThread, speech: Audio, reference: list[dict[str, Any]]
) -> None:
    bad, good = asyncio.run(beside_healthy(server, speech, converse(server.ws_url(), [])))
    assert bad.error is not None and bad.error["code"] == "idle_timeout"
    assert (bad.code, bad.reason) == (1001, "idle_timeout")
    check_healthy(good, reference)


def test_idle_timeout_flushes_the_audio_received(
    server: ServerThread, speech: Audio, reference: list[dict[str, Any]]
) -> None:
    """A client that goes quiet mid-stream gets the finals of what it sent, then 1001."""
    pcm = encode(resample(speech, HEALTHY_RATE, 16000), "s16le")
    bad, good = asyncio.run(
        beside_healthy(server, speech, converse(server.ws_url(), [START16, pcm]))
    )
    assert [m["type"] for m in bad.messages][-2:] == ["final", "error"]
    assert bad.of("final")[-1]["reason"] == "end_of_stream"
    assert bad.error is not None and bad.error["code"] == "idle_timeout"
    assert bad.code == 1001
    check_healthy(good, reference)


def test_trickling_client_is_closed(
    server: ServerThread, speech: Audio, reference: list[dict[str, Any]]
) -> None:
    """2 bytes every 0.2 s keep the idle timer (1 s) at bay, not the minimum audio rate."""
    before = errors_seen(server, "too_slow")
    trickle: list[str | bytes | Pause] = [START16]
    for _ in range(50):  # 10 s at most: the server closes after about 1 s
        trickle += [b"\x00\x00", Pause(0.2)]
    bad, good = asyncio.run(beside_healthy(server, speech, converse(server.ws_url(), trickle)))
    assert bad.error is not None and bad.error["code"] == "too_slow", bad.messages
    assert (bad.code, bad.reason) == (1001, "too_slow")
    assert [m["type"] for m in bad.messages] == ["ready", "error"], "no speech: no finals"
    check_healthy(good, reference)
    assert errors_seen(server, "too_slow") == before + 1


def test_an_oversized_value_is_neither_echoed_nor_logged(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    big = "x" * (MAX_MESSAGE - 100)
    with caplog.at_level(logging.DEBUG, logger="streamasr"):
        outcome = asyncio.run(converse(server.ws_url(), [start_text(16000, big)]))
    assert outcome.error is not None and outcome.error["code"] == "invalid_field"
    assert (outcome.code, outcome.reason) == (1007, "invalid_field")
    assert len(outcome.error["message"]) <= 300
    assert caplog.records, "the error is logged"
    assert max(len(r.getMessage()) for r in caplog.records) <= 400
    assert not any("x" * 201 in r.getMessage() for r in caplog.records)


def test_session_too_long(
    server: ServerThread, speech: Audio, reference: list[dict[str, Any]]
) -> None:
    """Past --max-session-seconds of audio: finals of the audio up to the limit, then 1008."""
    long = np.tile(resample(speech, HEALTHY_RATE, 16000), 3)  # 5.25 s > 4 s
    frames = [encode(long[i : i + 8000], "s16le") for i in range(0, long.size, 8000)]
    bad, good = asyncio.run(
        beside_healthy(server, speech, converse(server.ws_url(), [START16, *frames, STOP]))
    )
    assert bad.error is not None and bad.error["code"] == "session_too_long"
    assert (bad.code, bad.reason) == (1008, "session_too_long")
    finals = bad.of("final")
    assert finals and finals[-1]["end"] <= MAX_SESSION_S + 1e-6
    assert [m["type"] for m in bad.messages][-2:] == ["final", "error"]
    assert not bad.of("end")
    check_healthy(good, reference)


def test_vosk_session_too_long_sends_its_last_result(server: ServerThread, speech: Audio) -> None:
    long = np.tile(resample(speech, HEALTHY_RATE, 16000), 3)
    frames = [encode(long[i : i + 8000], "s16le") for i in range(0, long.size, 8000)]
    outcome = asyncio.run(converse(server.ws_url("/vosk"), frames))
    replies = [m for m in outcome.messages if "type" not in m]
    assert "result" in replies[-1] and outcome.error is not None
    assert outcome.error["code"] == "session_too_long" and outcome.code == 1008


def test_error_message_is_json_text(server: ServerThread) -> None:
    outcome = asyncio.run(converse(server.ws_url(), ["{"]))
    assert outcome.binary == 0
    error = outcome.error
    assert error is not None and set(error) == {"type", "code", "message"}
    assert (error["code"], outcome.code) == ("invalid_json", 1007)
