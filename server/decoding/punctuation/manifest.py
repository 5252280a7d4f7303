"""``punctuation.json``: what ``asr-export --punctuation`` wrote and the runtime reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from .labels import LAYOUTS, Layout, detect_layout

MANIFEST_FILE: Final = "punctuation.json"
FORMAT: Final = 1
TOKENIZER_FILE: Final = "tokenizer.json"
PRECISIONS: Final[tuple[str, ...]] = ("fp32", "int8")


class PunctuationManifestError(ValueError):
    """The folder is not a readable punctuation export."""

    def __init__(self, folder: Path, detail: str) -> None:
        super().__init__(f"{folder}: not a punctuation export ({detail})")


@dataclass(frozen=True)
class FileEntry:
    file: str
    bytes: int
    sha256: str
    validation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PunctuationManifest:
    """An exported punctuation model: its label layout, files and limits.

    ``labels`` are the label names in class-index order; ``max_length`` counts sub-tokens,
    special tokens included; ``lowercase_input`` says the runtime lower-cases the ASR words
    before tokenising (always, since CTC heads spell words upper-case).
    """

    source: str
    layout: Layout
    labels: tuple[str, ...]
    max_length: int
    tokenizer: FileEntry
    models: dict[str, FileEntry]
    input_names: tuple[str, ...]
    lowercase_input: bool = True
    tools: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT


def write_manifest(manifest: PunctuationManifest, folder: Path) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path) -> PunctuationManifest:
    """Read and check ``folder/punctuation.json``; raise :class:`PunctuationManifestError`."""
    path = folder / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PunctuationManifestError(folder, f"cannot read {MANIFEST_FILE}: {exc}") from exc
    try:
        if raw["format"] != FORMAT:
            raise PunctuationManifestError(folder, f"format {raw['format']}, expected {FORMAT}")
        layout = raw["layout"]
        if layout not in LAYOUTS:
            raise PunctuationManifestError(folder, f"layout {layout!r}")
        labels = tuple(str(x) for x in raw["labels"])
        if detect_layout(labels) != layout:
            raise PunctuationManifestError(folder, "labels do not match the layout")
        models = {k: FileEntry(**v) for k, v in raw["models"].items()}
        if not models or set(models) - set(PRECISIONS):
            raise PunctuationManifestError(folder, f"models must be among {PRECISIONS}")
        return PunctuationManifest(
            source=str(raw["source"]),
            layout=layout,
            labels=labels,
            max_length=int(raw["max_length"]),
            tokenizer=FileEntry(**raw["tokenizer"]),
            models=models,
            input_names=tuple(raw["input_names"]),
            lowercase_input=bool(raw.get("lowercase_input", True)),
            tools=dict(raw.get("tools", {})),
        )
    except (KeyError, TypeError) as exc:
        raise PunctuationManifestError(folder, f"missing or bad field {exc}") from exc
