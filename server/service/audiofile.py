"""An uploaded audio file decoded block by block, at its own rate, as float32 frames.

libsndfile (``soundfile``; 1.2 reads WAV, FLAC, Ogg Vorbis/Opus and MP3) decodes first. What it
cannot read (WebM, MP4/M4A, AAC...) goes to PyAV (``av``, ffmpeg's decoders; the optional
``streamasr[av]`` extra) when it is installed; without it such a file gets a 400 that says so.
Either way :meth:`AudioFile.read` returns at most the frames asked for, so a long file never
becomes one big array. More than two channels are averaged to mono (as ``asr-client``
does); one or two channels go to the stream as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO, Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from streamasr.server.protocol.openai.transcription import ApiError

log = logging.getLogger(__name__)

Frames = NDArray[np.float32]
"""Samples as (frames, channels), float32 in [-1, 1]."""
SOUNDFILE_FORMATS: Final = "wav, flac, ogg (vorbis, opus), mp3"
AV_FORMATS: Final = "webm, m4a/mp4, aac and whatever else ffmpeg decodes"


class UndecodableAudioError(ApiError):
    """400: the file is not audio any available decoder reads."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message, param="file", code="invalid_audio")


class AudioFile(Protocol):
    sample_rate: int
    channels: int
    """1 or 2: what :meth:`read` returns."""
    duration: float | None
    """Seconds, when the container says."""

    def read(self, frames: int) -> Frames:
        """Up to ``frames`` frames; fewer only at the end (zero rows: the end)."""
        ...

    def close(self) -> None: ...


def open_audio(file: IO[bytes], filename: str = "") -> AudioFile:
    """A decoder for ``file``: libsndfile, else PyAV, else :class:`UndecodableAudioError`."""
    try:
        return SoundfileAudio(file)
    except UndecodableAudioError as first:
        file.seek(0)
        try:
            import av  # noqa: F401
        except ImportError:
            raise UndecodableAudioError(
                f"Cannot decode '{filename[:80]}' ({first.message}). This server decodes"
                f" {SOUNDFILE_FORMATS}; {AV_FORMATS} need PyAV: pip install 'streamasr[av]'."
            ) from None
        return PyAvAudio(file, filename)


class SoundfileAudio:
    """libsndfile through ``soundfile``."""

    def __init__(self, file: IO[bytes]) -> None:
        import soundfile

        try:
            self._sf = soundfile.SoundFile(file)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
            raise UndecodableAudioError(f"libsndfile: {exc}") from None
        self.sample_rate = int(self._sf.samplerate)
        self._mix = self._sf.channels > 2
        self.channels = 1 if self._mix else int(self._sf.channels)
        frames = int(self._sf.frames)
        self.duration = frames / self.sample_rate if frames > 0 else None

    def read(self, frames: int) -> Frames:
        try:
            data = self._sf.read(frames, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as exc:
            raise UndecodableAudioError(f"The file is damaged: {exc}") from None
        return _mono(data) if self._mix else np.asarray(data, dtype=np.float32)

    def close(self) -> None:
        self._sf.close()


class PyAvAudio:
    """ffmpeg through PyAV: the first audio stream, as float32 at its own rate."""

    def __init__(self, file: IO[bytes], filename: str) -> None:
        import av

        try:
            self._container: Any = av.open(file, mode="r")
            stream = self._container.streams.audio[0]
        except (av.FFmpegError, IndexError, ValueError) as exc:
            raise UndecodableAudioError(
                f"Cannot decode '{filename[:80]}': neither libsndfile nor ffmpeg reads it ({exc})"
            ) from None
        self.sample_rate = int(stream.rate)
        source_channels = int(stream.channels or 1)
        self.channels = 2 if source_channels == 2 else 1
        layout = "stereo" if self.channels == 2 else "mono"
        self._resampler: Any = av.AudioResampler(format="flt", layout=layout, rate=self.sample_rate)
        duration = self._container.duration
        self.duration = duration / av.time_base if duration else None
        self._frames: Iterator[Any] = self._container.decode(stream)
        self._buffer: list[Frames] = []
        self._buffered = 0
        self._error = av.FFmpegError

    def read(self, frames: int) -> Frames:
        while self._buffered < frames:
            try:
                frame = next(self._frames, None)
            except self._error as exc:
                raise UndecodableAudioError(f"The file is damaged: {exc}") from None
            if frame is None:
                break
            for out in self._resampler.resample(frame):
                data = np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1, self.channels)
                self._buffer.append(data)
                self._buffered += data.shape[0]
        if not self._buffer:
            return np.zeros((0, self.channels), dtype=np.float32)
        joined = np.concatenate(self._buffer)
        head, tail = joined[:frames], joined[frames:]
        self._buffer = [tail] if tail.shape[0] else []
        self._buffered = tail.shape[0]
        return head

    def close(self) -> None:
        self._container.close()


def _mono(data: NDArray[Any]) -> Frames:
    return np.asarray(data.mean(axis=1, keepdims=True, dtype=np.float32), dtype=np.float32)
