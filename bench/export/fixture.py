"""Accuracy of each exported precision of the fixture checkpoint against PyTorch.

    python -m bench export_fixture [--shared ../shared] [--out bench/out]

Exports ``../shared/models/tts-en-ctc-small`` (fp32, fp16, int8) into a temporary folder and
prints WER and CER on ``../shared/speech/dev/tts`` for PyTorch and each ONNX file, with the
number of utterances whose transcript equals PyTorch's.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from streamasr.export.evaluate import transcribe_offline
from streamasr.export.pipeline import ExportConfig, run_export

from ..common.fixtures import DEFAULT_SHARED, dev_set
from ..common.scoring import cer, wer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    checkpoint = args.shared / "models" / "tts-en-ctc-small"
    tts = dev_set(args.shared / "speech" / "dev" / "tts")
    files, refs = [path for path, _ in tts], [ref for _, ref in tts]
    with tempfile.TemporaryDirectory() as tmp:
        folder = run_export(ExportConfig(model=str(checkpoint), out_root=Path(tmp))).folder
        texts = transcribe_offline(str(checkpoint), folder, files)
    figures = {
        runtime: {
            "wer": wer(refs, hyps).rate,
            "cer": cer(refs, hyps).rate,
            "same_as_torch": sum(a == b for a, b in zip(hyps, texts["torch"], strict=True)),
        }
        for runtime, hyps in texts.items()
    }
    base = figures["fp32"]["wer"]
    print(f"fixture tts-en-ctc-small on speech/dev/tts ({len(refs)} utterances), whole utterances")
    print("| runtime | WER | CER | WER / fp32 | transcripts = PyTorch |")
    print("| --- | --- | --- | --- | --- |")
    for runtime, f in figures.items():
        print(
            f"| {runtime} | {f['wer']:.4f} | {f['cer']:.4f} | {f['wer'] / base:.3f} "
            f"| {f['same_as_torch']}/{len(refs)} |"
        )
    bound = 1.10 * base + 0.005
    print(f"int8 bound 1.10 x fp32 + 0.5 pt = {bound:.4f}: int8 WER {figures['int8']['wer']:.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export_fixture.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
