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
