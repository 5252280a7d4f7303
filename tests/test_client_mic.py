"""``asr-client mic`` against the real server, with a wav file played through a fake input stream.

The fake stands in for ``sounddevice.InputStream`` only: it calls the client's callback from its
own thread with int16 blocks of the requested size, as PortAudio does; everything after the
callback (queue, websocket, server, display) is the real thing.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from numpy.typing import NDArray

from bench.common.scoring import agreement, normalize
from streamasr.client.cli import main
from streamasr.client.console import CLEAR_LINE, LiveView
from streamasr.client.messages import FinalResult, PartialResult
from streamasr.client.mic import (
    AudioInput,
    FrameQueue,
    InputCallback,
    MicOptions,
    MicResult,
    run_mic,
)
from streamasr.client.ws import ConnectOptions
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import transcribe_file
from streamasr.server.inference.runtime import RuntimeConfig

from .client_support import padded_wav
from .service_util import ServerThread, server_config
from .tools import missing


class WavInput:
    """A fake ``sounddevice.InputStream`` playing a wav file at ``speed`` times real time."""

    def __init__(self, path: Path, speed: float, **kwargs: Any) -> None:
        self.kwargs = kwargs
        samples, self.rate = soundfile.read(str(path), dtype=kwargs["dtype"], always_2d=True)
        assert self.rate == kwargs["samplerate"] and kwargs["channels"] == 1
        self.samples: NDArray[Any] = samples[:, :1]
        self.callback: InputCallback = kwargs["callback"]
        self.blocksize: int = kwargs["blocksize"]
        self.speed = speed
        self.done = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._play, name="fake-portaudio", daemon=True)
        self.calls = 0
        self.played_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def close(self) -> None:
        self.stop()

    def _play(self) -> None:
        started = time.monotonic()
        for first in range(0, len(self.samples), self.blocksize):
            if self._stopping.is_set():
                break
            block = self.samples[first : first + self.blocksize].copy()
            self.callback(block, len(block), None, 0)
            self.calls += 1
            self.played_s = (first + len(block)) / self.rate
            if self.speed > 0:
                due = started + (first + len(block)) / self.rate / self.speed
                time.sleep(max(0.0, due - time.monotonic()))
        self.done.set()


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    with ServerThread(server_config(fixture_export)) as running:
        yield running


@pytest.fixture(scope="module")
def recording(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 44.1 kHz recording: speech, then enough silence for the endpoint to cut a final."""
    source = shared_dir / "speech" / "dev" / "tts" / "tts-001.flac"
    target = tmp_path_factory.mktemp("mic") / "mic-44k.wav"
    return padded_wav(source, target, rate=44100, before_s=0.5, after_s=1.5)


async def _record(
    server: ServerThread, recording: Path, view: LiveView, speed: float, stop_after_s: float | None
) -> tuple[MicResult, WavInput]:
    """Record ``recording`` through the client; stop (as Ctrl-C does) at its end or after
    ``stop_after_s`` seconds of it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    made: list[WavInput] = []

    def press_ctrl_c(fake: WavInput) -> None:
        if stop_after_s is None:
            fake.done.wait()
        else:
            while fake.played_s < stop_after_s and not fake.done.is_set():
                time.sleep(0.01)
        loop.call_soon_threadsafe(stop.set)

    def open_input(**kwargs: Any) -> AudioInput:
        made.append(WavInput(recording, speed, **kwargs))
        threading.Thread(target=press_ctrl_c, args=(made[0],), daemon=True).start()
        return made[0]

    options = MicOptions(sample_rate=soundfile.info(str(recording)).samplerate)
    result = await run_mic(ConnectOptions(url=server.ws_url()), options, view, stop, open_input)
    return result, made[0]


def test_mic_streams_live_and_matches_offline(
    server: ServerThread, recording: Path, fixture_export: Path
) -> None:
    out = io.StringIO()
    view = LiveView(out, live=True, width=40)
    result, fake = asyncio.run(_record(server, recording, view, 6.0, None))
    duration = soundfile.info(str(recording)).duration
    assert result.sample_rate == 44100
    assert fake.kwargs["blocksize"] == 882 and fake.kwargs["dtype"] == "int16"
    assert result.dropped == 0 and result.blocks == fake.calls
    assert result.audio_seconds == pytest.approx(duration, abs=0.03)
    with Engine(fixture_export, EngineConfig(runtime=RuntimeConfig(device="cpu"))) as engine:
        streamed = transcribe_file(engine, recording, streaming=True)
        offline = normalize(transcribe_file(engine, recording).text)
    # every block arrived, in order: the server's transcript is the in-process streaming one
    assert [f.text for f in result.finals] == [s.text for s in streamed.segments]
    text = normalize(" ".join(f.text for f in result.finals))
    assert agreement(text, offline) >= 0.8, (text, offline)
    # the terminal shows partials rewritten in place (cut to 39 columns), finals as lines
    written = out.getvalue()
    drawn = [chunk for chunk in written.split(CLEAR_LINE) if chunk]
    assert written.count(CLEAR_LINE) >= 2
    assert all(len(chunk) <= 39 for chunk in drawn if "\n" not in chunk)
    finals_printed = [line.split(CLEAR_LINE)[-1] for line in written.split("\n")[:-1]]
    assert finals_printed == [f.text for f in result.finals]
    assert written.endswith("\n")


def test_stop_in_the_middle_flushes_the_last_final(
    server: ServerThread, recording: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping mid-sentence (Ctrl-C) still sends the queued audio and prints the last final."""
    out = io.StringIO()
    view = LiveView(out, live=False)
    with caplog.at_level(logging.INFO, logger="streamasr.client"):
        result, fake = asyncio.run(_record(server, recording, view, 2.0, 3.0))
    assert len(result.finals) == 1 and len(result.finals[0].text.split()) >= 3
    assert fake.played_s < 4.0  # of 8 s: stopped well before the end
    assert result.audio_seconds == pytest.approx(fake.calls * fake.blocksize / 44100, abs=0.03)
    assert out.getvalue() == "".join(f.text + "\n" for f in result.finals)
    assert any(
        r.name == "streamasr.client.mic" and "stopping" in r.getMessage() for r in caplog.records
    )


def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    async def flood() -> tuple[FrameQueue, list[bytes]]:
        queue = FrameQueue(asyncio.get_running_loop(), maxsize=3)
        block = np.arange(160, dtype=np.int16).reshape(-1, 1)

        def audio_thread() -> None:
            for _ in range(100):
                queue.callback(block, 160, None, 0)

        await asyncio.to_thread(audio_thread)
        await asyncio.sleep(0)  # the last scheduled puts run
        queue.close()
        return queue, [chunk async for chunk in queue.chunks()]

    with caplog.at_level(logging.WARNING, logger="streamasr.client.mic"):
        queue, chunks = asyncio.run(flood())
    assert (queue.received, queue.dropped, len(chunks)) == (100, 97, 3)
    assert chunks[0] == np.arange(160, dtype=np.int16).tobytes()
    assert any("dropped 1 block" in r.getMessage() for r in caplog.records)


def test_live_view_on_a_pipe() -> None:
    out = io.StringIO()
    view = LiveView(out)  # StringIO is not a terminal: finals only
    view.on_result(PartialResult(0, "", "HEL", 0.0))
    view.on_result(FinalResult(0, "HELLO", 0.0, 1.0))
    view.close()
    assert out.getvalue() == "HELLO\n" and view.finals == [FinalResult(0, "HELLO", 0.0, 1.0)]


def test_list_devices(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import sounddevice
    except (ImportError, OSError):
        missing("sounddevice cannot load PortAudio (apt-get install libportaudio2)")
    assert main(["mic", "--list-devices"]) == 0
    table = str(sounddevice.query_devices()).strip() or "PortAudio found no audio devices"
    assert capsys.readouterr().out.strip() == table
