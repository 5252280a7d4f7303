"""The trained fixture checkpoint: ONNX transcripts against PyTorch on the synthetic dev set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile
import torch

from streamasr.export.source import load_checkpoint
from streamasr.server.ctc import greedy_text
from streamasr.server.frontend import model_input
from streamasr.server.manifest import read_manifest
from streamasr.server.scoring import cer, wer


def _transcribe_all(
    fixture_checkpoint: Path, fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> dict[str, list[str]]:
    manifest = read_manifest(fixture_export)
    spec, vocab = manifest.input, manifest.vocabulary
    torch_model = load_checkpoint(str(fixture_checkpoint)).model
    sessions = {
        p: ort.InferenceSession(str(fixture_export / e.file), providers=["CPUExecutionProvider"])
        for p, e in manifest.precisions.items()
    }
    texts: dict[str, list[str]] = {"torch": [], **{p: [] for p in sessions}}
    for path, _ in tts_set:
        samples, rate = soundfile.read(str(path), dtype="float32")
        assert rate == 16000
        x = model_input(samples, spec)[None]
        with torch.inference_mode():
            logits = torch_model(input_values=torch.from_numpy(x)).logits.numpy()
        texts["torch"].append(greedy_text(logits[0], vocab))
        for precision, session in sessions.items():
            (out,) = session.run(None, {spec.name: x})
            texts[precision].append(greedy_text(np.asarray(out[0]), vocab))
    return texts


def test_fixture_onnx_transcripts(
    fixture_checkpoint: Path, fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    texts = _transcribe_all(fixture_checkpoint, fixture_export, tts_set)
    refs = [ref for _, ref in tts_set]
    assert len(refs) == 30
    # fp32: the same transcripts as PyTorch, utterance by utterance.
    assert texts["fp32"] == texts["torch"]
    torch_wer = wer(refs, texts["torch"]).rate
    # The model card's figure (WER 0.632, CER 0.205): proof the pipeline feeds it right.
    assert 0.55 < torch_wer < 0.70
    assert 0.15 < cer(refs, texts["torch"]).rate < 0.25
    # int8: within 1.10 x fp32 WER + 0.5 points.
    fp32_wer = wer(refs, texts["fp32"]).rate
    assert wer(refs, texts["int8"]).rate <= 1.10 * fp32_wer + 0.005
    # fp16 (CPU here): close to fp32 as well.
    assert wer(refs, texts["fp16"]).rate <= 1.05 * fp32_wer + 0.005
