"""Whole recordings through the engine: the offline reference, and the same audio streamed.

``transcribe`` runs a recording as one window (full context) through the same intake, decoder
and endpointer as a stream; ``stream_array`` feeds it to a stream frame by frame, as a client
would, and is what tests and benchmarks compare against it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.engine import Engine
from streamasr.server.engine.stream import Stream
from streamasr.server.errors import AudioDataError
from streamasr.server.events import Event, Final, Segment
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions


@dataclass(frozen=True)
class Transcript:
    """Segments of a recording and the events that produced them."""

    segments: tuple[Segment, ...]
    events: tuple[Event, ...]

    @property
    def text(self) -> str:
        """What a reader sees: the captions when the stream punctuates, else the words."""
        return " ".join(s.shown_text for s in self.segments)


def _float_format(sample_rate: int, samples: NDArray[np.floating]) -> AudioFormat:
    channels = 1 if samples.ndim == 1 else int(samples.shape[1])
    return AudioFormat("f32le", sample_rate, channels)


def _collect(events: list[Event]) -> Transcript:
    segments = tuple(e.segment for e in events if isinstance(e, Final))
    return Transcript(segments, tuple(events))


def transcribe(
    engine: Engine,
    samples: NDArray[np.floating],
    sample_rate: int,
    options: StreamOptions | None = None,
) -> Transcript:
    """The offline reference: the whole recording as one window."""
    stream = engine.offline_stream(_float_format(sample_rate, samples), options)
    events = stream.feed(samples)
    events += stream.finish()
    return _collect(events)


def frames(samples: NDArray[np.floating], sizes: Sequence[int]) -> Iterator[NDArray[np.floating]]:
    """Cut ``samples`` into consecutive frames of the given sizes, cycling through them."""
    position, i = 0, 0
    while position < samples.shape[0]:
        size = sizes[i % len(sizes)]
        yield samples[position : position + size]
        position += size
        i += 1


def stream_array(
    engine: Engine,
    samples: NDArray[np.floating],
    sample_rate: int,
    options: StreamOptions | None = None,
    frame_sizes: Sequence[int] = (1600,),
) -> Transcript:
    """Stream a recording as a client would, in frames of ``frame_sizes`` samples."""
    stream = engine.stream(_float_format(sample_rate, samples), options)
    return _collect(run_frames(stream, frames(samples, frame_sizes)))


def run_frames(stream: Stream, pieces: Iterator[NDArray[np.floating]]) -> list[Event]:
    """Feed every frame, finish, and return all events in order."""
    events: list[Event] = []
    for piece in pieces:
        events += stream.feed(piece)
    events += stream.finish()
    return events


def read_audio(path: Path | str) -> tuple[NDArray[np.float32], int]:
    """Samples (frames, channels) and rate of an audio file; needs ``soundfile`` (client extra)."""
    try:
        import soundfile
    except ImportError as exc:
        raise AudioDataError(
            "reading audio files needs the soundfile package (pip install 'streamasr[client]')"
        ) from exc
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as exc:
        raise AudioDataError(f"cannot read {path}: {exc}") from exc
    if data.shape[1] > 2:
        data = data.mean(axis=1, keepdims=True, dtype=np.float32)
    return np.asarray(data, dtype=np.float32), int(rate)


def transcribe_file(
    engine: Engine,
    path: Path | str,
    options: StreamOptions | None = None,
    *,
    streaming: bool = False,
) -> Transcript:
    """:func:`transcribe` of an audio file (more than two channels are averaged first); with
    ``streaming``, :func:`stream_array` in 20 ms frames instead."""
    samples, rate = read_audio(path)
    audio = samples if samples.shape[1] == 2 else samples[:, 0]
    if streaming:
        return stream_array(engine, audio, rate, options, frame_sizes=[max(1, rate // 50)])
    return transcribe(engine, audio, rate, options)
