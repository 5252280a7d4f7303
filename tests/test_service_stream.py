"""The websocket service end to end: transcripts over v1 and Vosk, /healthz, /metrics and the page.

One in-process server on a free loopback port for the module, the fixture model's export, real
``websockets`` clients.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.messages import Assembler
from websockets.frames import Frame, Opcode

from bench.common.scoring import wer
from streamasr.server.engine.offline import stream_array, transcribe

from .service_util import (
    STOP,
    Audio,
    Outcome,
    Pause,
    ServerThread,
    as_received,
    chunks,
    converse,
    encode,
    finals_preceded_by_partials,
    http_get,
    metric,
    parse_exposition,
    read_mono,
    resample,
    server_config,
    start_text,
    stream_v1,
    to_s16,
    vosk_lockstep,
)
from .timeouts import timeout

log = logging.getLogger(__name__)

DevSet = list[tuple[Path, str]]
RATES = (8000, 22050, 44100, 48000)
ENCODINGS = ("s16le", "f32le")
FILES_PER_COMBO = 8
CHUNK_S = 0.1
WER_MARGIN = 0.01
"""One point of WER above the engine's offline run of the same audio."""
STALL = Pause(2.3)
"""Longer than the 2 s behind real time at which a stream reports that it lags."""


@pytest.fixture(scope="module")
def server(
    fixture_export: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    static = tmp_path_factory.mktemp("static")
    (static / "index.html").write_text("<!doctype html><title>asr</title>\n", encoding="utf-8")
    (static / "app.js").write_text("console.log('asr');\n", encoding="utf-8")
    (static / "notes.txt").write_text("not served\n", encoding="utf-8")
    with ServerThread(server_config(fixture_export), static_dir=static) as running:
        yield running


def subset(tts_set: DevSet, combo: int) -> DevSet:
    """FILES_PER_COMBO files, a different slice for each combination (wrapping around)."""
    start = combo * FILES_PER_COMBO % len(tts_set)
    return [tts_set[(start + i) % len(tts_set)] for i in range(FILES_PER_COMBO)]


def test_streamed_wer_over_rates_and_encodings(server: ServerThread, tts_set: DevSet) -> None:
    """Every rate x encoding, FILES_PER_COMBO files each streamed concurrently in 100 ms frames.

    Per combination, the server's finals equal the engine's own streaming of the same samples
    (the service adds nothing); over the whole set, their WER is within one point of the
    engine's offline (full-context) run of the same samples.
    """
    refs: list[str] = []
    streamed: list[str] = []
    offline: list[str] = []
    for combo, (rate, encoding) in enumerate(itertools.product(RATES, ENCODINGS)):
        files = subset(tts_set, combo)
        audio = []
        for path, _ in files:
            samples, source_rate = read_mono(path)
            audio.append(as_received(resample(samples, source_rate, rate), encoding))
        outcomes = asyncio.run(stream_all(server.ws_url(), audio, rate, encoding))
        frame = int(rate * CHUNK_S)
        for outcome, samples in zip(outcomes, audio, strict=True):
            assert outcome.code == 1000, (rate, encoding, outcome.messages[-1:])
            types = [m["type"] for m in outcome.messages]
            assert types[0] == "ready" and types[-1] == "end", types
            assert outcome.of("final"), (rate, encoding, "no final")
            assert finals_preceded_by_partials(outcome.messages), (rate, encoding)
            engine_stream = stream_array(server.engine, samples, rate, frame_sizes=[frame])
            assert outcome.text == engine_stream.text, (rate, encoding)
            streamed.append(outcome.text)
            offline.append(transcribe(server.engine, samples, rate).text)
        refs += [ref for _, ref in files]
    streamed_wer, offline_wer = wer(refs, streamed).rate, wer(refs, offline).rate
    log.info("server WER %.4f, engine offline WER %.4f (%d words)", streamed_wer, offline_wer,
             wer(refs, offline).length)  # fmt: skip
    assert streamed_wer <= offline_wer + WER_MARGIN, (streamed_wer, offline_wer)


async def stream_all(url: str, audio: list[Audio], rate: int, encoding: str) -> list[Outcome]:
    sessions = (stream_v1(url, x, rate, encoding, chunk_s=CHUNK_S) for x in audio)
    return list(await asyncio.gather(*sessions))


def test_end_reports_audio_seconds_and_words(server: ServerThread, tts_set: DevSet) -> None:
    samples, rate = read_mono(tts_set[0][0])
    outcome = asyncio.run(stream_v1(server.ws_url(), samples, rate, "f32le", words=True))
    assert outcome.of("end")[0]["audio_seconds"] == pytest.approx(samples.size / rate, abs=1e-3)
    ready = outcome.of("ready")[0]
    assert ready["protocol"] == 1 and ready["model"] == server.engine.manifest.name
    assert ready["precision"] == server.engine.scheduler.precision
    assert outcome.of("final"), outcome.messages
    for final in outcome.of("final"):
        words = final["words"]
        assert words, final
        assert " ".join(w["word"] for w in words) == final["text"]
        assert all(0.0 <= w["confidence"] <= 1.0 and w["start"] < w["end"] for w in words)
        assert final["start"] <= words[0]["start"] and words[-1]["end"] <= final["end"]
    audio_ends = [partial["audio_end"] for partial in outcome.of("partial")]
    assert audio_ends == sorted(audio_ends) and 0.0 < audio_ends[-1] <= samples.size / rate + 0.02
    for partial in outcome.of("partial"):
        assert partial["text"].startswith(partial["committed"])


def test_partials_and_words_can_be_turned_off(server: ServerThread, tts_set: DevSet) -> None:
    samples, rate = read_mono(tts_set[1][0])
    outcome = asyncio.run(
        stream_v1(server.ws_url(), samples, rate, partials=False, words=False, endpoint_ms=400)
    )
    assert outcome.code == 1000
    assert not outcome.of("partial")
    assert outcome.of("final") and all("words" not in m for m in outcome.of("final"))


def test_root_path_speaks_v1_when_the_first_message_has_a_type(
    server: ServerThread, tts_set: DevSet
) -> None:
    samples, rate = read_mono(tts_set[2][0])
    at_root = asyncio.run(stream_v1(server.ws_url("/"), samples, rate))
    at_v1 = asyncio.run(stream_v1(server.ws_url(), samples, rate))
    assert at_root.code == 1000 and at_root.of("ready")
    assert at_root.text == at_v1.text


@pytest.mark.parametrize("path", ["/", "/vosk"])
def test_vosk_lockstep_exchange(server: ServerThread, tts_set: DevSet, path: str) -> None:
    """vosk-server's test client: config, 0.2 s int16 chunks each awaiting one reply, eof."""
    text = ""
    for wav, _ in tts_set[3:5]:
        samples, rate = read_mono(wav)
        pcm = encode(samples, "s16le")
        replies, final, code = asyncio.run(vosk_lockstep(server.ws_url(path), pcm, rate))
        assert code == 1000
        assert len(replies) == -(-len(pcm) // (int(rate * 0.2) * 2))
        assert all(set(r) == {"partial"} or set(r) == {"result", "text"} for r in replies)
        assert set(final) == {"result", "text"}
        results = [r["text"] for r in replies if "text" in r] + [final["text"]]
        text = " ".join(t for t in results if t)
        expected = stream_array(server.engine, as_received(samples, "s16le"), rate).text
        assert text == expected
        words = [w for r in [*replies, final] for w in r.get("result", [])]
        assert " ".join(w["word"] for w in words) == text
        assert all(set(w) == {"word", "start", "end", "conf"} for w in words)


def test_vosk_without_config_assumes_16k_and_words_off(
    server: ServerThread, tts_set: DevSet
) -> None:
    samples, rate = read_mono(tts_set[5][0])
    assert rate == 16000
    pcm = encode(samples, "s16le")
    replies, final, code = asyncio.run(
        vosk_lockstep(server.ws_url("/vosk"), pcm, None, words=False)
    )
    assert code == 1000
    assert set(final) == {"text"}
    expected = stream_array(server.engine, as_received(samples, "s16le"), rate).text
    texts = [r["text"] for r in [*replies, final] if r.get("text")]
    assert " ".join(texts) == expected


def test_healthz_reports_the_model(server: ServerThread) -> None:
    reply = http_get(server.port, "/healthz")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["status"] == "ok"
    assert body["model"] == server.engine.manifest.name
    assert body["precision"] == server.engine.scheduler.precision
    assert body["provider"] == "CPUExecutionProvider"
    assert body["sessions"] == 0


def test_metrics_exposition(server: ServerThread, tts_set: DevSet) -> None:
    samples, rate = read_mono(tts_set[6][0])
    before = parse_exposition(http_get(server.port, "/metrics").body.decode())
    outcome = asyncio.run(stream_v1(server.ws_url(), samples, rate))
    assert outcome.code == 1000
    reply = http_get(server.port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = parse_exposition(reply.body.decode())

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("asr_sessions_total", protocol="v1") == 1
    assert metric(after, "asr_sessions_active", protocol="v1") == 0
    assert grew("asr_audio_seconds_total") == pytest.approx(samples.size / rate, abs=1e-3)
    assert grew("asr_partial_latency_seconds_count") == len(outcome.of("partial"))
    assert grew("asr_final_latency_seconds_count") == len(outcome.of("final"))
    assert metric(after, "asr_partial_latency_seconds_bucket", le="+Inf") == metric(
        after, "asr_partial_latency_seconds_count"
    )
    assert grew("asr_scheduler_windows_total") > 0
    assert metric(after, "asr_scheduler_batch_size_windows_count") == metric(
        after, "asr_scheduler_batches_total"
    )
    assert metric(after, "asr_model_loaded") == 1
    info = [k for k in after if k[0] == "asr_model_info"]
    assert dict(info[0][1])["model"] == server.engine.manifest.name


def test_page_and_static_files(server: ServerThread) -> None:
    page = http_get(server.port, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"<title>asr</title>" in page.body
    script = http_get(server.port, "/static/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    for path in ("/static/notes.txt", "/static/../config.py", "/static/missing.js", "/nowhere"):
        assert http_get(server.port, path).status == 404, path


def test_missing_page_is_a_clear_404(fixture_export: Path, tmp_path: Path) -> None:
    with ServerThread(server_config(fixture_export), static_dir=tmp_path) as bare:
        reply = http_get(bare.port, "/")
    assert reply.status == 404
    assert b"index.html is missing" in reply.body


def test_a_stalled_client_is_told_it_lags(server: ServerThread, tts_set: DevSet) -> None:
    """Audio that arrives 2 s behind the wall clock (a network stall): one ``lagging`` message,
    and the transcript is unaffected."""
    samples, rate = read_mono(tts_set[7][0])
    pcm = encode(samples, "s16le")
    cut = int(0.1 * rate) * 2
    before = parse_exposition(http_get(server.port, "/metrics").body.decode())

    async def stalled() -> Outcome:
        messages = [start_text(rate), pcm[:cut], STALL, pcm[cut:], STOP]
        return await converse(server.ws_url(), messages)

    outcome = asyncio.run(stalled())
    assert outcome.code == 1000
    (lagging,) = outcome.of("lagging")
    assert lagging["lag_s"] >= 2.0
    expected = stream_array(server.engine, as_received(samples, "s16le"), rate).text
    assert outcome.text == expected
    after = parse_exposition(http_get(server.port, "/metrics").body.decode())
    assert metric(after, "asr_lag_events_total") == metric(before, "asr_lag_events_total") + 1


FAST_FRAME = 320
"""20 ms at 16 kHz: the frames of a live client, which the session takes without its task."""


def test_audio_frames_skip_the_message_queue_and_keep_their_order(
    server: ServerThread, tts_set: DevSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole binary messages are taken in the connection's data callback while the session
    waits (server/service/wire/framing.py): websockets' queue sees few of them. Fragmented
    messages still go through websockets, in order with the rest, and the finals are the
    engine's own stream of the same samples."""
    queued = {"binary": 0}
    put = Assembler.put

    def counting_put(self: Assembler, frame: Frame) -> None:
        if frame.opcode is Opcode.BINARY:
            queued["binary"] += 1
        put(self, frame)

    monkeypatch.setattr(Assembler, "put", counting_put)
    samples, rate = read_mono(tts_set[2][0])
    samples = resample(samples, rate, 16000)
    pieces = chunks(to_s16(samples).tobytes(), FAST_FRAME * 2)
    fragmented = pieces[3::7]  # sent in two frames each: websockets reassembles them

    async def run() -> list[dict[str, Any]]:
        async with connect(server.ws_url(), compression=None, open_timeout=timeout(30)) as ws:
            await ws.send(start_text(16000))
            for index, piece in enumerate(pieces):
                if index % 7 == 3:
                    await ws.send([piece[:100], piece[100:]])
                else:
                    await ws.send(piece)
                await asyncio.sleep(0.004)
            await ws.send(STOP)
            return [json.loads(message) async for message in ws]

    messages = asyncio.run(run())
    assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end", messages[-1:]
    text = " ".join(m["text"] for m in messages if m["type"] == "final")
    received = as_received(samples, "s16le")
    expected = stream_array(server.engine, received, 16000, frame_sizes=[FAST_FRAME]).text
    assert text and text == expected
    assert messages[-1]["audio_seconds"] == pytest.approx(received.size / 16000, abs=1e-3)
    assert len(fragmented) <= queued["binary"] < len(pieces) // 2, (queued, len(pieces))
