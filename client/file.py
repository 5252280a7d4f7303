"""Stream an audio file to the server at its own sample rate and collect the finals.

The file is read a chunk at a time (``soundfile``), sent as s16le or f32le at the file's rate
(mono or stereo as recorded; more channels are averaged to mono), paced at ``speed`` times real
time or, without a speed, as fast as the server takes it (the websocket's backpressure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from numpy.typing import NDArray

from streamasr.server.constants import Encoding

from .messages import ClientError, FinalResult, StartSettings
from .ws import ConnectOptions, Result, open_session

log = logging.getLogger(__name__)


class AudioFileError(ClientError):
    """An input file could not be read as audio."""


@dataclass(frozen=True)
class FileOptions:
    """How a file is streamed."""

    speed: float | None = None
    """Times real time (1.0: as a live source would); None: as fast as the server takes it."""
    encoding: Encoding = "s16le"
    """Wire format of the samples."""
    chunk_seconds: float = 0.1
    """Audio per binary frame."""
    partials: bool = False
    """Ask for partials (only ``on_result`` callers see them; captions use finals)."""
    endpoint_ms: int | None = None
    """Silence that ends a segment; None: the server's setting."""

    def __post_init__(self) -> None:
        if self.speed is not None and self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if not 0.001 <= self.chunk_seconds <= 10:
            raise ValueError(f"chunk_seconds must be in [0.001, 10], got {self.chunk_seconds}")


@dataclass(frozen=True)
class FileTranscript:
    """What the server made of one file."""

    path: Path
    finals: tuple[FinalResult, ...]
    audio_seconds: float
    """Seconds of audio the server says it received (its ``end`` message)."""
    sample_rate: int
    wall_seconds: float

    @property
    def text(self) -> str:
        return " ".join(f.text for f in self.finals if f.text)


def open_audio(path: Path) -> soundfile.SoundFile:
    """``path`` opened for reading; unreadable files raise :class:`AudioFileError`."""
    try:
        return soundfile.SoundFile(str(path))
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"cannot read {path} as audio: {exc}") from exc


async def pcm_chunks(
    audio: soundfile.SoundFile, encoding: Encoding, chunk_seconds: float, speed: float | None
) -> AsyncIterator[bytes]:
    """The file's samples as wire bytes, ``chunk_seconds`` at a time, paced at ``speed``."""
    block = max(1, round(audio.samplerate * chunk_seconds))
    dtype = "int16" if encoding == "s16le" else "float32"
    wire = "<i2" if encoding == "s16le" else "<f4"
    started = time.monotonic()
    sent = 0
    while True:
        samples = audio.read(block, dtype=dtype, always_2d=True)
        if len(samples) == 0:
            return
        if samples.shape[1] > 2:
            samples = _downmix(samples, dtype)
        if speed is not None:
            due = started + sent / audio.samplerate / speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        sent += len(samples)
        yield np.ascontiguousarray(samples, dtype=wire).tobytes()


def _downmix(samples: NDArray[Any], dtype: str) -> NDArray[Any]:
    mono: NDArray[np.float32] = samples.astype(np.float32).mean(axis=1, keepdims=True)
    return mono.astype(dtype)


async def stream_file(
    path: Path,
    connect: ConnectOptions,
    options: FileOptions | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> FileTranscript:
    """Stream ``path`` through one session; its finals in order."""
    options = options or FileOptions()
    finals: list[FinalResult] = []

    def collect(result: Result) -> None:
        if isinstance(result, FinalResult):
            finals.append(result)
        if on_result is not None:
            on_result(result)

    with open_audio(path) as audio:
        channels = audio.channels if audio.channels <= 2 else 1
        settings = StartSettings(
            sample_rate=audio.samplerate,
            encoding=options.encoding,
            channels=channels,
            partials=options.partials,
            words=True,
            endpoint_ms=options.endpoint_ms,
        )
        log.info(
            "%s: %d Hz, %d channel(s), %.1f s",
            path,
            audio.samplerate,
            audio.channels,
            audio.frames / audio.samplerate,
        )
        started = time.monotonic()
        async with open_session(connect, settings) as session:
            chunks = pcm_chunks(audio, options.encoding, options.chunk_seconds, options.speed)
            end = await session.run(chunks, collect)
        wall = time.monotonic() - started
    log.info("%s: %.1f s of audio in %.1f s", path, end.audio_seconds, wall)
    return FileTranscript(path, tuple(finals), end.audio_seconds, audio.samplerate, wall)
