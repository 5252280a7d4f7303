"""Domain errors of the serving side.

Each error builds its message in ``__init__`` so that raising sites stay short
and messages stay consistent. The websocket service maps each class to one
documented close code (see ``docs/protocol.md``).
"""

from __future__ import annotations

from pathlib import Path


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


class AudioFormatError(AsrError):
    """A stream's declared audio format is not one the intake accepts."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"unsupported audio format: {problem}")


class AudioDataError(AsrError):
    """A frame of audio cannot be decoded as the declared format."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"bad audio data: {problem}")


class StreamConfigError(AsrError):
    """A stream or engine option is outside its allowed range."""

    def __init__(self, option: str, value: object, allowed: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"{option}={value!r} is not allowed ({allowed})")


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


# -- the websocket service ---------------------------------------------------------------------
# Each class below maps to one error code string and one websocket close code through the table
# in ``protocol.py`` (``ERROR_TABLE``); docs/protocol.md lists them.


class ProtocolError(AsrError):
    """A client broke protocol v1 (or the Vosk dialect): the session ends with an error."""


class InvalidJsonError(ProtocolError):
    """A text message is not a JSON object (or holds NaN/Infinity)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"text message is not a JSON object: {problem}")


class UnknownMessageError(ProtocolError):
    """A JSON message of a type the protocol does not define."""

    def __init__(self, kind: object) -> None:
        self.kind = kind
        super().__init__(f"unknown message type {kind!r}")


class InvalidFieldError(ProtocolError):
    """A field of a message is missing, unknown, of the wrong type or out of range."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"field {name!r}: {problem}")


class UnsupportedRateError(ProtocolError):
    """The declared sample rate is outside what the intake resamples."""

    def __init__(self, rate: object, low: int, high: int) -> None:
        self.rate = rate
        super().__init__(f"sample rate {rate!r} Hz is not supported (allowed: {low} to {high} Hz)")


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


class EmptyFrameError(ProtocolError):
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


class ServerShuttingDownError(AsrError):
    """The server is stopping: what was received is flushed, then the session ends."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class ServerConfigError(AsrError):
    """An ``asr-server`` flag or ``ASR_*`` variable has a value the server cannot use."""

    def __init__(self, option: str, value: object, problem: str) -> None:
        self.option = option
        self.value = value
        self.problem = problem
        super().__init__(f"{option}={value!r}: {problem}")


class ModelStoreError(AsrError):
    """``--model`` names nothing servable, or exporting it failed."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"model {model!r}: {problem}")
