"""``asr-client file`` against the real server (in a thread, on loopback) and the fixture model.

References, run in-process on the same model and precision: the same file through the streaming
engine (the server runs exactly that, so text and word times must match: the client moved every
sample intact), and the offline transcript of the whole file, which streaming approaches
(character agreement).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bench.common.scoring import agreement, normalize
from streamasr.client.cli import main
from streamasr.client.file import AudioFileError, FileOptions, FileTranscript, stream_file
from streamasr.client.messages import ServerError, StartSettings
from streamasr.client.ws import ConnectError, ConnectOptions, open_session
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import transcribe_file
from streamasr.server.inference.runtime import RuntimeConfig

from .client_support import padded_wav, parse_srt, parse_vtt
from .service_util import ServerThread, server_config
from .timeouts import timeout

MIN_AGREEMENT = 0.8
"""Streamed vs offline character agreement per file (short files differ by a letter or two)."""

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    with ServerThread(server_config(fixture_export)) as running:
        yield running


@pytest.fixture(scope="module")
def reference(fixture_export: Path) -> Iterator[Engine]:
    """The server's model and precision (auto: int8 on CPU), in-process."""
    with Engine(fixture_export, EngineConfig(runtime=RuntimeConfig(device="cpu"))) as engine:
        yield engine


@pytest.fixture(scope="module")
def inputs(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A 16 kHz mono flac as shipped, a 44.1 kHz stereo wav and a 48 kHz mono wav."""
    tts = shared_dir / "speech" / "dev" / "tts"
    folder = tmp_path_factory.mktemp("client-file")
    return [
        tts / "tts-001.flac",
        padded_wav(
            tts / "tts-017.flac",
            folder / "tts-017-44k-stereo.wav",
            rate=44100,
            before_s=0.3,
            after_s=0.5,
            channels=2,
        ),
        padded_wav(
            tts / "tts-006.flac", folder / "tts-006-48k.wav", rate=48000, before_s=0.5, after_s=1.5
        ),
    ]


def _offline(engine: Engine, path: Path) -> str:
    return normalize(transcribe_file(engine, path).text)


def _check_transcript(result: FileTranscript, engine: Engine) -> None:
    duration = soundfile.info(str(result.path)).duration
    assert result.audio_seconds == pytest.approx(duration, abs=0.01)
    streamed = transcribe_file(engine, result.path, streaming=True)
    assert [f.text for f in result.finals] == [s.text for s in streamed.segments]
    expected = [(w.text, w.start, w.end) for s in streamed.segments for w in s.words]
    got = [(w.word, w.start, w.end) for f in result.finals for w in f.words]
    assert [w[0] for w in got] == [w[0] for w in expected]
    assert np.allclose([w[1:] for w in got], [w[1:] for w in expected], atol=0.0011)
    offline = _offline(engine, result.path)
    assert agreement(normalize(result.text), offline) >= MIN_AGREEMENT, (result.text, offline)
    previous = 0.0
    for final in result.finals:
        assert final.words, "finals carry words (the client asks for them)"
        assert " ".join(w.word for w in final.words) == final.text
        for word in final.words:
            assert previous <= word.start < word.end <= duration + 0.05
            assert 0.0 <= word.confidence <= 1.0
            previous = word.start


@pytest.mark.parametrize("encoding", ["s16le", "f32le"])
def test_files_match_the_offline_transcript(
    server: ServerThread, reference: Engine, inputs: list[Path], encoding: str
) -> None:
    connect = ConnectOptions(url=server.ws_url())
    options = FileOptions(encoding="s16le" if encoding == "s16le" else "f32le")

    async def run_all() -> list[FileTranscript]:
        return [await stream_file(path, connect, options) for path in inputs]

    for result in asyncio.run(run_all()):
        assert result.sample_rate == soundfile.info(str(result.path)).samplerate
        _check_transcript(result, reference)


def test_paced_streaming_takes_real_time(server: ServerThread, inputs: list[Path]) -> None:
    path = inputs[2]
    duration = soundfile.info(str(path)).duration
    connect = ConnectOptions(url=server.ws_url())
    started = time.monotonic()
    result = asyncio.run(stream_file(path, connect, FileOptions(speed=4.0)))
    elapsed = time.monotonic() - started
    assert elapsed >= duration / 4.0 - 0.1  # the last chunk goes out at (duration - chunk) / 4
    assert result.finals


def test_cli_writes_valid_srt_and_vtt(
    server: ServerThread, reference: Engine, inputs: list[Path], tmp_path: Path
) -> None:
    url = ["--url", server.ws_url()]
    assert main(["file", *map(str, inputs), "--format", "srt", "--out", str(tmp_path), *url]) == 0
    assert main(["file", str(inputs[0]), "--format", "vtt", "--out", str(tmp_path / "one.vtt"),
                 "--encoding", "f32le", *url]) == 0  # fmt: skip
    for path in inputs:
        cues = parse_srt((tmp_path / f"{path.stem}.srt").read_text(encoding="utf-8"))
        assert cues, path
        text = normalize(" ".join(line for cue in cues for line in cue.lines))
        assert agreement(text, _offline(reference, path)) >= MIN_AGREEMENT
        duration_ms = soundfile.info(str(path)).duration * 1000
        assert cues[-1].end_ms <= duration_ms + 1000  # held at most 1 s past the audio
        for cue in cues:
            assert len(cue.lines) <= 2 and all(len(line) <= 42 for line in cue.lines)
            assert cue.end_ms - cue.start_ms <= 7000
    vtt = parse_vtt((tmp_path / "one.vtt").read_text(encoding="utf-8"))
    srt = parse_srt((tmp_path / f"{inputs[0].stem}.srt").read_text(encoding="utf-8"))
    assert [c.lines for c in vtt] == [c.lines for c in srt]


def test_cli_text_and_json(
    server: ServerThread, inputs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", server.ws_url()]
    assert main(["file", str(inputs[0]), str(inputs[2]), *url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(lines)
    assert main(["file", str(inputs[2]), "--format", "json", "--speed", "50", *url]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == str(inputs[2]) and record["segments"][0]["words"]
    # several files cannot share one SRT stream
    assert main(["file", str(inputs[0]), str(inputs[2]), "--format", "srt", *url]) == 2


def test_errors(server: ServerThread, inputs: list[Path], tmp_path: Path) -> None:
    connect = ConnectOptions(url=server.ws_url())

    async def bad_rate() -> None:
        async with open_session(connect, StartSettings(sample_rate=1)):
            pass

    with pytest.raises(ServerError) as caught:
        asyncio.run(bad_rate())
    assert caught.value.code == "unsupported_rate"

    async def odd_bytes() -> None:
        async with open_session(connect, StartSettings(sample_rate=16000)) as session:
            await session.send_audio(b"\x00\x01\x02")  # s16le needs whole samples
            await session.stop()
            async for _ in session.results():
                pass

    with pytest.raises(ServerError) as caught:  # the error message comes before the close
        asyncio.run(odd_bytes())
    assert caught.value.code == "bad_audio"

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    with pytest.raises(AudioFileError):
        asyncio.run(stream_file(not_audio, connect))
    assert main(["file", str(not_audio), "--url", server.ws_url()]) == 2

    closed = ConnectOptions(url="ws://127.0.0.1:9/v1/stream", open_timeout=timeout(2))
    with pytest.raises(ConnectError):
        asyncio.run(stream_file(inputs[0], closed))


def test_file_client_does_not_need_sounddevice() -> None:
    code = (
        "import sys; sys.modules['sounddevice'] = None\n"
        "from streamasr.client import cli, file, mic\n"
        "assert cli.build_parser().parse_args(['file', 'x.wav']).format == 'text'\n"
        "try:\n"
        "    mic.list_devices()\n"
        "except mic.MicError as exc:\n"
        "    print('MicError', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("MicError the microphone client needs sounddevice")


def test_token_and_self_signed_wss(
    fixture_export: Path, inputs: list[Path], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    config = server_config(fixture_export, auth_token=TOKEN, tls_cert=cert, tls_key=key)
    with ServerThread(config) as running:
        url = running.ws_url()
        assert url.startswith("wss://")
        path = inputs[2]
        good = ConnectOptions(url=url, token=TOKEN, insecure=True)
        assert asyncio.run(stream_file(path, good)).finals
        # the browser's way: the token in the query string
        query = ConnectOptions(url=f"{url}?token={TOKEN}", insecure=True)
        assert asyncio.run(stream_file(path, query)).finals
        with pytest.raises(ConnectError, match="401"):
            asyncio.run(stream_file(path, ConnectOptions(url=url, insecure=True)))
        with pytest.raises(ConnectError, match="certificate"):
            asyncio.run(stream_file(path, ConnectOptions(url=url, token=TOKEN)))
        args = ["file", str(path), "--url", url, "--token", TOKEN, "--insecure"]
        assert main(args) == 0
