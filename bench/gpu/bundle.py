"""The GPU capacity run's bundle: ``prepare`` exports the models and copies the human dev speech
into one folder (here, with ``../shared``); the GPU host reads only that folder."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..common import fixtures

BUNDLE_FILE = "bundle.json"
AUDIO_DIR = Path("speech") / "dev" / "human"


@dataclass(frozen=True)
class Bundle:
    """What ``prepare`` wrote: paths relative to the bundle folder."""

    model: str
    """Architecture of the capacity model (``../shared/models/configs`` stem, or ``tiny``)."""
    capacity_model: str
    frontend_model: str
    audio: str
    precisions: tuple[str, ...]

    @classmethod
    def read(cls, folder: Path) -> Bundle:
        raw = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
        raw["precisions"] = tuple(raw["precisions"])
        return cls(**raw)


def prepare(shared: Path, work: Path, out: Path, model: str, smoke: bool) -> Bundle:
    """Export the capacity model (fp16; with ``smoke`` also fp32 and int8) and the fixture
    (fp32, for the instant-model frontend figure), and copy the human dev speech, into ``out``."""
    precisions = ("fp16", "fp32", "int8") if smoke else ("fp16",)
    capacity = fixtures.export_random(shared, work, model, precisions)
    fixture = fixtures.export_fixture(shared, work, ("fp32",))
    models = out / "models"
    for folder in (capacity, fixture):
        target = models / folder.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target)
    audio = out / AUDIO_DIR
    audio.mkdir(parents=True, exist_ok=True)
    for path in (shared / AUDIO_DIR).iterdir():
        if path.is_file():
            shutil.copy2(path, audio / path.name)
    bundle = Bundle(
        model=model,
        capacity_model=str(Path("models") / capacity.name),
        frontend_model=str(Path("models") / fixture.name),
        audio=str(AUDIO_DIR),
        precisions=precisions,
    )
    (out / BUNDLE_FILE).write_text(json.dumps(asdict(bundle), indent=2) + "\n", encoding="utf-8")
    return bundle


def bundle_audio(folder: Path, bundle: Bundle) -> NDArray[np.float32]:
    speech = fixtures.load_set(folder / bundle.audio)
    return np.concatenate([s for s, _ in speech])
