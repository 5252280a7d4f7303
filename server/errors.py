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
