"""The OpenAI-compatible HTTP API, driven by the real ``openai`` SDK over loopback.

One server (token, a 2 MiB upload cap, one transcription at a time) answers every format; the
transcript must equal what ``asr-client transcribe --stream`` (``transcribe_file(...,
streaming=True)``) makes of the same file. Bad requests get OpenAI-shaped errors while a
websocket session on the same port is undisturbed.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import socket
import ssl
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile
import srt
import webvtt
from openai import OpenAI

from streamasr.server.engine.offline import stream_array, transcribe_file

from .service_util import (
    ServerThread,
    healthy_speech,
    server_config,
    stream_healthy,
)
from .timeouts import timeout

TOKEN = "openai-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPLOAD_CAP = 2 << 20
FILES = ("tts-003.flac", "tts-015.flac")


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    config = server_config(
        fixture_export,
        auth_token=TOKEN,
        max_upload_bytes=UPLOAD_CAP,
        max_transcriptions=1,
        idle_timeout_s=5.0,
    )
    with ServerThread(config) as running:
        yield running


def client(server: ServerThread, key: str = TOKEN) -> OpenAI:
    base = f"http://127.0.0.1:{server.port}/v1"
    return OpenAI(base_url=base, api_key=key, max_retries=0, timeout=timeout(60))


def audio_path(shared_dir: Path, name: str) -> Path:
    return shared_dir / "speech" / "dev" / "tts" / name


def reference(server: ServerThread, path: Path) -> str:
    """What ``asr-client transcribe --stream`` prints for ``path``."""
    return transcribe_file(server.engine, path, streaming=True).text


@pytest.mark.parametrize("name", FILES)
def test_json_and_text_equal_the_streaming_client(
    server: ServerThread, shared_dir: Path, name: str
) -> None:
    path = audio_path(shared_dir, name)
    expected = reference(server, path)
    with path.open("rb") as f:
        result = client(server).audio.transcriptions.create(model="whisper-1", file=f)
    with path.open("rb") as f:
        text = client(server).audio.transcriptions.create(
            model="whisper-1", file=f, response_format="text"
        )
    assert expected and result.text == expected
    assert text.strip() == expected


def test_verbose_json_with_words_and_segments(server: ServerThread, shared_dir: Path) -> None:
    path = audio_path(shared_dir, FILES[1])
    expected = transcribe_file(server.engine, path, streaming=True)
    with path.open("rb") as f:
        result = client(server).audio.transcriptions.create(
            model=server.engine.manifest.name,
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert result.text == expected.text
    assert result.duration == pytest.approx(soundfile.info(str(path)).duration, abs=1e-3)
    assert result.segments is not None and result.words is not None
    assert [s.text for s in result.segments] == [s.text for s in expected.segments]
    assert [s.id for s in result.segments] == list(range(len(expected.segments)))
    words = [w for s in expected.segments for w in s.words]
    assert [(w.word, w.start, w.end) for w in result.words] == [
        (w.text, w.start, w.end) for w in words
    ]
    extra = result.model_extra or {}
    assert extra.get("task") == "transcribe"
    assert all(s.start <= s.end for s in result.segments)


def test_verbose_json_default_is_segments_only(server: ServerThread, shared_dir: Path) -> None:
    with audio_path(shared_dir, FILES[0]).open("rb") as f:
        result = client(server).audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json"
        )
    assert result.segments and result.words is None


def test_srt_and_vtt_parse(server: ServerThread, shared_dir: Path) -> None:
    path = audio_path(shared_dir, FILES[1])
    expected = transcribe_file(server.engine, path, streaming=True).segments
    with path.open("rb") as f:
        subrip = client(server).audio.transcriptions.create(
            model="whisper-1", file=f, response_format="srt"
        )
    with path.open("rb") as f:
        webvtt_text = client(server).audio.transcriptions.create(
            model="whisper-1", file=f, response_format="vtt"
        )
    cues = list(srt.parse(subrip))
    assert [c.content for c in cues] == [s.text for s in expected]
    assert [round(c.start.total_seconds(), 3) for c in cues] == [
        round(s.start, 3) for s in expected
    ]
    captions = webvtt.from_buffer(io.StringIO(webvtt_text))
    assert [c.text for c in captions.captions] == [s.text for s in expected]
    assert [c.end_in_seconds for c in captions.captions] == [int(s.end) for s in expected]


def test_stream_sends_deltas_then_done(server: ServerThread, shared_dir: Path) -> None:
    path = audio_path(shared_dir, FILES[1])
    expected = reference(server, path)
    with path.open("rb") as f:
        events = list(
            client(server).audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        )
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) == {"transcript.text.delta"}
    deltas = "".join(e.delta for e in events[:-1])  # type: ignore[union-attr]
    assert deltas == expected == events[-1].text  # type: ignore[union-attr]


def test_prompt_becomes_hotwords_and_is_bounded(server: ServerThread, shared_dir: Path) -> None:
    with (
        audio_path(shared_dir, FILES[0]).open("rb") as f,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client(server).audio.transcriptions.create(model="whisper-1", file=f, prompt="x" * 60)
    assert caught.value.param == "prompt"


def test_models_lists_the_loaded_model(server: ServerThread) -> None:
    ids = [m.id for m in client(server).models.list()]
    assert server.engine.manifest.name in ids and "whisper-1" in ids
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong").models.list()


def test_wrong_token_is_401(server: ServerThread, shared_dir: Path) -> None:
    with (
        audio_path(shared_dir, FILES[0]).open("rb") as f,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client(server, "wrong").audio.transcriptions.create(model="whisper-1", file=f)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


def test_not_audio_is_400(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    junk = ("junk.webm", b"\x1aE\xdf\xa3 not really a webm file" * 50, "audio/webm")
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).audio.transcriptions.create(model="whisper-1", file=junk)
    assert caught.value.param == "file" and caught.value.code == "invalid_audio"
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(openai.BadRequestError) as absent:
        client(server).audio.transcriptions.create(model="whisper-1", file=junk)
    assert "streamasr[av]" in absent.value.message


def test_m4a_through_pyav(server: ServerThread, shared_dir: Path, tmp_path: Path) -> None:
    import av

    path = audio_path(shared_dir, FILES[1])
    samples, rate = soundfile.read(str(path), dtype="float32")
    out = tmp_path / "speech.m4a"
    with av.open(str(out), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with out.open("rb") as f:
        result = client(server).audio.transcriptions.create(model="whisper-1", file=f)
    with av.open(str(out)) as container:  # what ffmpeg decodes, streamed as the client would
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    expected = stream_array(
        server.engine, decoded.astype(np.float32), rate, frame_sizes=[rate // 50]
    )
    assert expected.text and result.text == expected.text


def test_too_large_is_413(server: ServerThread) -> None:
    big = ("big.wav", b"\0" * (UPLOAD_CAP + 1024), "audio/wav")
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).audio.transcriptions.create(model="whisper-1", file=big)
    assert caught.value.status_code == 413 and caught.value.code == "request_too_large"


def test_job_cap_is_429_with_retry_after(server: ServerThread, shared_dir: Path) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout(10)) as held:
        head = (
            f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
            "\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
            "--b\r\n"
        )
        held.sendall(head.encode())  # the body never completes: the job holds the one slot
        _wait_for(lambda: server.service is not None and server.service.api.active == 1)
        with (
            audio_path(shared_dir, FILES[0]).open("rb") as f,
            pytest.raises(openai.RateLimitError) as caught,
        ):
            client(server).audio.transcriptions.create(model="whisper-1", file=f)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    _wait_for(lambda: server.service is not None and server.service.api.active == 0)


def test_bad_requests_beside_a_websocket_session(server: ServerThread, shared_dir: Path) -> None:
    speech = healthy_speech(shared_dir)
    url = server.ws_url()
    alone = asyncio.run(stream_healthy(url, speech, headers=AUTH))
    with ThreadPoolExecutor(1) as pool:
        beside = pool.submit(asyncio.run, stream_healthy(url, speech, headers=AUTH))
        answers = [
            _post(server.port, "application/json", b'{"model": "whisper-1"}'),
            _post(server.port, "multipart/form-data; boundary=zz", b"no boundary in here"),
            _post(server.port, "multipart/form-data", b"--zz\r\n"),
            _post(server.port, "multipart/form-data; boundary=zz", _form("prompt", "a" * 100_000)),
            _post(server.port, "multipart/form-data; boundary=zz", _form("model", "whisper-1")),
            _post(server.port, "text/plain", b"x", path="/v1/audio/translations"),
        ]
        healthy = beside.result(timeout(60))
    codes = [(status, body["error"]["code"]) for status, body in answers]
    assert codes == [
        (400, "unsupported_content_type"),
        (400, "malformed_body"),
        (400, "malformed_body"),
        (400, "field_too_large"),
        (400, "missing_required"),
        (404, "unknown_url"),
    ]
    assert answers[3][1]["error"]["param"] == "prompt"
    assert healthy.code == 1000 and healthy.of("final") == alone.of("final")


def test_tls(fixture_export: Path, certificate: tuple[Path, Path], shared_dir: Path) -> None:
    cert, key = certificate
    with ServerThread(server_config(fixture_export, tls_cert=cert, tls_key=key)) as running:
        trusted = ssl.create_default_context(cafile=str(cert))
        secure = OpenAI(
            base_url=f"https://127.0.0.1:{running.port}/v1",
            api_key="none",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=trusted, timeout=timeout(60)),
        )
        path = audio_path(shared_dir, FILES[0])
        with path.open("rb") as f:
            result = secure.audio.transcriptions.create(model="whisper-1", file=f)
        assert result.text == reference(running, path)


# -- helpers --------------------------------------------------------------------------------------


def _form(name: str, value: str) -> bytes:
    return (
        f'--zz\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n--zz--\r\n'
    ).encode()


def _post(
    port: int, content_type: str, body: bytes, path: str = "/v1/audio/transcriptions"
) -> tuple[int, dict[str, dict[str, str]]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout(30))
    try:
        connection.request("POST", path, body, {**AUTH, "Content-Type": content_type})
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()


def _wait_for(condition: object, seconds: float = 10.0) -> None:
    """Poll a condition of the server thread (its state has no event to await from here)."""
    import time

    deadline = time.monotonic() + timeout(seconds)
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the server did not reach the expected state")
        time.sleep(0.01)
