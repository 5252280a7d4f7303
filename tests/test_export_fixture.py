"""The trained fixture checkpoint: ONNX transcripts against PyTorch on the synthetic dev set."""

from __future__ import annotations

from pathlib import Path

from bench.common.scoring import cer, wer
from streamasr.export.evaluate import transcribe_offline


def test_fixture_onnx_transcripts(
    fixture_checkpoint: Path, fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    texts = transcribe_offline(str(fixture_checkpoint), fixture_export, [p for p, _ in tts_set])
    refs = [ref for _, ref in tts_set]
    assert len(refs) == 30
    # fp32: the same transcripts as PyTorch, utterance by utterance.
    assert texts["fp32"] == texts["torch"]
    # The model card's figures (WER 0.632, CER 0.205): proof the pipeline feeds the model right.
    assert 0.55 < wer(refs, texts["torch"]).rate < 0.70
    assert 0.15 < cer(refs, texts["torch"]).rate < 0.25
    # int8: within 1.10 x fp32 WER + 0.5 points.
    fp32_wer = wer(refs, texts["fp32"]).rate
    assert wer(refs, texts["int8"]).rate <= 1.10 * fp32_wer + 0.005
    # fp16 (run on CPU here) stays close to fp32 as well.
    assert wer(refs, texts["fp16"]).rate <= 1.05 * fp32_wer + 0.005
