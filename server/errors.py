"""Domain errors of the serving side.

Each error builds its message in ``__init__`` so that raising sites stay short
and messages stay consistent. The websocket service maps each class to one
documented close code (see ``docs/protocol.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

ECHO_CHARS: Final = 200
"""The most characters of a client's value an error message quotes (see :func:`echo`)."""
_ECHO_INT_BITS: Final = 1024
"""Integers wider than this are described, not printed (``repr`` of a huge int is slow and
raises past Python's digit limit)."""


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters.

    Every error that quotes a value a client sent goes through here, so a 1 MB string field
    reaches neither the client nor the log beyond the bound.
    """
    if isinstance(value, int) and value.bit_length() > _ECHO_INT_BITS:
        return f"<an integer of {value.bit_length()} bits>"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} characters)"


class AsrError(Exception):
    """Base class of every error the serving side raises on purpose."""


class ManifestError(AsrError):
    """A model folder's manifest is missing, unreadable or inconsistent."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelFileError(AsrError):
    """An ONNX file named by a manifest is missing or does not match its checksum."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class AudioFormatError(AsrError, ValueError):
    """A stream's declared audio format is not one the intake accepts."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"unsupported audio format: {problem}")


class AudioDataError(AsrError, ValueError):
    """A frame of audio cannot be decoded as the declared format."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"bad audio data: {problem}")


class StreamConfigError(AsrError, ValueError):
    """A stream or engine option is outside its allowed range."""

    def __init__(self, option: str, value: object, allowed: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"{option}={echo(value)} is not allowed ({allowed})")


class StreamStateError(AsrError):
    """A stream was used after it finished or failed."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"stream misuse: {problem}")


class ModelGeometryError(AsrError):
    """A model's frame geometry does not allow exact windowed decoding."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"{model}: {problem}")


class ProviderError(AsrError):
    """The requested onnxruntime provider or device is not available."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"inference provider: {problem}")


class SchedulerClosedError(AsrError):
    """Work was submitted to a scheduler that is stopping or stopped."""

    def __init__(self) -> None:
        super().__init__("the inference scheduler is stopped")


class SchedulerOverloadedError(AsrError):
    """The scheduler's bounded queue is full: the server is past its capacity."""

    def __init__(self, queued: int) -> None:
        self.queued = queued
        super().__init__(f"the inference queue is full ({queued} windows waiting)")


class InferenceError(AsrError):
    """onnxruntime failed on a batch of windows."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"inference failed: {problem}")


class InferenceUnavailableError(InferenceError):
    """The remote inference pool (Triton) cannot be reached or gave no reply in time: the
    window is lost, try again later."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"the inference pool at {url} is unavailable: {problem}")


# -- the websocket service ---------------------------------------------------------------------
# Each class below maps to one error code string and one websocket close code through the table
# in ``protocol.py`` (``ERROR_TABLE``); docs/protocol.md lists them.


class ProtocolError(AsrError):
    """A client broke protocol v1 (or the Vosk dialect): the session ends with an error."""


class InvalidJsonError(ProtocolError, ValueError):
    """A text message is not a JSON object (or holds NaN/Infinity)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"text message is not a JSON object: {problem}")


class UnknownMessageError(ProtocolError):
    """A JSON message of a type the protocol does not define."""

    def __init__(self, kind: object) -> None:
        self.kind = kind
        super().__init__(f"unknown message type {echo(kind)}")


class InvalidFieldError(ProtocolError, ValueError):
    """A field of a message is missing, unknown, of the wrong type or out of range."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"field {echo(name)}: {problem}")


class UnsupportedRateError(ProtocolError, ValueError):
    """The declared sample rate is outside what the intake resamples."""

    def __init__(self, rate: object, low: int, high: int) -> None:
        self.rate = rate
        allowed = f"allowed: {low} to {high} Hz"
        super().__init__(f"sample rate {echo(rate)} Hz is not supported ({allowed})")


class AudioBeforeStartError(ProtocolError):
    """A binary frame came before the ``start`` message."""

    def __init__(self) -> None:
        super().__init__("audio before the start message")


class StopBeforeStartError(ProtocolError):
    """``stop`` came before ``start``."""

    def __init__(self) -> None:
        super().__init__("stop before the start message")


class DuplicateStartError(ProtocolError):
    """A second ``start`` on the same connection."""

    def __init__(self) -> None:
        super().__init__("the session already started: one start per connection")


class AudioAfterStopError(ProtocolError):
    """A binary frame came after ``stop``."""

    def __init__(self) -> None:
        super().__init__("audio after the stop message")


class MessageAfterStopError(ProtocolError):
    """A text message came after ``stop``."""

    def __init__(self) -> None:
        super().__init__("text message after the stop message")


class EmptyFrameError(ProtocolError, ValueError):
    """A binary frame of zero bytes."""

    def __init__(self) -> None:
        super().__init__("empty audio frame")


class MessageTooBigError(ProtocolError):
    """A message above the size limit (websockets fails the connection with 1009 itself)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"message larger than {limit} bytes")


class IdleTimeoutError(AsrError):
    """The client sent nothing for the idle timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"no message for {seconds:g} s")


class SessionTooLongError(AsrError):
    """The session's audio passed the longest a session may stream."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the session passed {seconds:g} s of audio (the server's limit)")


class TooSlowError(AsrError):
    """The client delivered less than the minimum audio in a window of wall time."""

    def __init__(self, audio_s: float, window_s: float) -> None:
        self.audio_s = audio_s
        self.window_s = window_s
        super().__init__(f"less than {audio_s:g} s of audio in {window_s:g} s")


class ServerShuttingDownError(AsrError):
    """The server is stopping: what was received is flushed, then the session ends."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class ServerConfigError(AsrError, ValueError):
    """An ``asr-server`` flag or ``ASR_*`` variable has a value the server cannot use."""

    def __init__(self, option: str, value: object, problem: str) -> None:
        self.option = option
        self.value = value
        self.problem = problem
        super().__init__(f"{option}={echo(value)}: {problem}")


class ModelStoreError(AsrError):
    """``--model`` names nothing servable, or exporting it failed."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"model {model!r}: {problem}")
