"""Transcribe files with PyTorch and with each exported ONNX file: whole utterances, greedy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.decoding.ctc import greedy_text
from streamasr.server.engine.frontend import model_input
from streamasr.server.engine.offline import read_audio
from streamasr.server.manifest import read_manifest

from .source import load_checkpoint


def transcribe_offline(
    checkpoint: str, export_folder: Path, files: Sequence[Path]
) -> dict[str, list[str]]:
    """Transcripts per runtime: ``torch`` and each precision of the export (on CPU)."""
    import onnxruntime as ort
    import torch

    manifest = read_manifest(export_folder)
    spec, vocab = manifest.input, manifest.vocabulary
    model = load_checkpoint(checkpoint).model
    sessions = {
        precision: ort.InferenceSession(
            str(export_folder / entry.file), providers=["CPUExecutionProvider"]
        )
        for precision, entry in manifest.precisions.items()
    }
    texts: dict[str, list[str]] = {"torch": [], **{p: [] for p in sessions}}
    for path in files:
        samples, rate = read_audio(path)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{path}: {rate} Hz; these figures need 16 kHz files")
        x = model_input(np.ascontiguousarray(samples.mean(axis=1)), spec)[None]
        with torch.inference_mode():
            logits = model(**{spec.name: torch.from_numpy(x)}).logits.numpy()
        texts["torch"].append(greedy_text(logits[0], vocab))
        for precision, session in sessions.items():
            (out,) = session.run(None, {spec.name: x})
            texts[precision].append(greedy_text(np.asarray(out[0]), vocab))
    return texts
