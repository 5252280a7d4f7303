"""Check every exported file against the PyTorch model on fixed inputs.

Inputs: a real speech clip (LibriSpeech 1089-134686-0001, CC BY 4.0, shipped in
``data/``), and seeded signals of odd lengths around 0.3 s, 1.7 s and 10 s,
plus one batch of two equal-length inputs to exercise the batch axis. Each file
is judged by its largest absolute logit difference (relative to the size of the
reference logits) and by how well its greedy transcripts agree with PyTorch's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from numpy.typing import NDArray

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.decoding.ctc import greedy_text
from streamasr.server.engine.frontend import model_input
from streamasr.server.manifest import InputSpec, Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria of one precision."""

    max_abs_rel: float
    """Largest |ONNX - PyTorch| logit difference, over max(1, largest |PyTorch logit|)."""
    min_agreement: float
    """Smallest character agreement of greedy transcripts, over all inputs together."""


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_rel=1e-3, min_agreement=1.0),
    "fp16": Tolerance(max_abs_rel=1e-2, min_agreement=0.98),
    "int8": Tolerance(max_abs_rel=0.25, min_agreement=0.90),
}
"""fp32 must give identical transcripts; fp16 and int8 are lossy by design and are
held to bounds that a sound conversion meets on trained and random models alike
(see docs/export.md for the measured figures)."""


@dataclass(frozen=True)
class Probe:
    """One validation input: a name and a batch of 16 kHz signals of equal length."""

    name: str
    signals: NDArray[np.float32]


@dataclass(frozen=True)
class Reference:
    """PyTorch's logits and transcripts for each probe."""

    logits: dict[str, NDArray[np.float32]]
    texts: dict[str, list[str]]


@dataclass(frozen=True)
class Report:
    """Validation figures of one file; ``passed`` decides whether it enters the manifest."""

    precision: str
    provider: str
    max_abs_diff: float
    reference_scale: float
    max_abs_rel: float
    agreement: float
    identical_transcripts: int
    transcripts: int
    seconds: float
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probes() -> list[Probe]:
    """The fixed validation inputs (deterministic: same on every machine)."""
    speech = _speech_clip()
    rng = np.random.default_rng(20241124)

    def noise(n: int) -> NDArray[np.float32]:
        return (0.05 * rng.standard_normal(n)).astype(np.float32)

    t = np.arange(27_211) / SAMPLE_RATE
    sweep = (0.3 * np.sin(2 * np.pi * (100 + 900 * t) * t)).astype(np.float32) + noise(t.size)
    reps = -(-160_017 // speech.size)
    long = np.tile(speech, reps)[:160_017] + noise(160_017)
    pair = np.stack([sweep, speech[: sweep.size] if speech.size >= sweep.size else sweep[::-1]])
    return [
        Probe("speech", speech[None]),
        Probe("noise-0.3s", noise(4_801)[None]),
        Probe("sweep-1.7s", sweep[None]),
        Probe("speech-10s", long.astype(np.float32)[None]),
        Probe("batch-2x1.7s", pair.astype(np.float32)),
    ]


def _speech_clip() -> NDArray[np.float32]:
    import soundfile

    source = resources.files("streamasr.export").joinpath("data/speech.flac")
    with resources.as_file(source) as path:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"validation clip is {rate} Hz, expected {SAMPLE_RATE}")
    return np.asarray(samples, dtype=np.float32)


def batch_input(signals: NDArray[np.float32], spec: InputSpec) -> NDArray[np.float32]:
    """Graph input for a batch of equal-length signals."""
    return np.stack([model_input(s, spec) for s in signals])


def torch_reference(
    model: Any, spec: InputSpec, vocab: Vocabulary, items: list[Probe]
) -> Reference:
    """Run the PyTorch model once per probe."""
    import torch

    logits: dict[str, NDArray[np.float32]] = {}
    texts: dict[str, list[str]] = {}
    with torch.inference_mode():
        for probe in items:
            x = torch.from_numpy(batch_input(probe.signals, spec))
            out = model(**{spec.name: x}).logits.numpy().astype(np.float32)
            logits[probe.name] = out
            texts[probe.name] = [greedy_text(row, vocab) for row in out]
    return Reference(logits, texts)


def agreement(a: str, b: str) -> float:
    """Character agreement of two transcripts: 1 - edit distance / longer length (spaces count)."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    chars = jiwer.ReduceToListOfListOfChars()
    out = jiwer.process_characters(a, b, reference_transform=chars, hypothesis_transform=chars)
    return 1.0 - (out.substitutions + out.deletions + out.insertions) / longest


@dataclass
class _Comparison:
    """What running one file on every probe gave, against the reference."""

    worst: float = 0.0
    """Largest absolute logit difference."""
    scale: float = 0.0
    """Largest absolute reference logit."""
    identical: int = 0
    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)


def validate_file(
    path: Path,
    precision: str,
    *,
    spec: InputSpec,
    vocab: Vocabulary,
    reference: Reference,
    items: list[Probe],
    providers: list[str],
) -> Report:
    """Run one ONNX file on every probe and judge it against the reference."""
    import onnxruntime as ort

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        return _failed(precision, providers[0], started, f"onnxruntime cannot load it: {exc}")
    provider = session.get_providers()[0]
    compared = _Comparison()
    for probe in items:
        ref = reference.logits[probe.name]
        (out,) = session.run(None, {spec.name: batch_input(probe.signals, spec)})
        out = np.asarray(out, dtype=np.float32)
        if out.shape != ref.shape:
            return _failed(
                precision, provider, started, f"{probe.name}: shape {out.shape} != {ref.shape}"
            )
        compared.worst = max(compared.worst, float(np.max(np.abs(out - ref))) if out.size else 0.0)
        compared.scale = max(compared.scale, float(np.max(np.abs(ref))) if ref.size else 0.0)
        for row, ref_text in zip(out, reference.texts[probe.name], strict=True):
            text = greedy_text(row, vocab)
            compared.identical += text == ref_text
            compared.hyps.append(text)
            compared.refs.append(ref_text)
    return _judge(precision, provider, started, compared)


def _judge(precision: str, provider: str, started: float, compared: _Comparison) -> Report:
    tol = TOLERANCES[precision]
    worst = compared.worst
    rel = worst / max(1.0, compared.scale)
    agree = agreement(" | ".join(compared.refs), " | ".join(compared.hyps))
    problems = []
    if not np.isfinite(worst) or rel > tol.max_abs_rel:
        problems.append(f"max |logit diff| {worst:.4g} = {rel:.3g} of scale > {tol.max_abs_rel}")
    if agree < tol.min_agreement:
        problems.append(f"transcript agreement {agree:.4f} < {tol.min_agreement}")
    return Report(
        precision=precision,
        provider=provider,
        max_abs_diff=worst,
        reference_scale=compared.scale,
        max_abs_rel=rel,
        agreement=agree,
        identical_transcripts=compared.identical,
        transcripts=len(compared.refs),
        seconds=time.perf_counter() - started,
        passed=not problems,
        reason="; ".join(problems),
    )


def _failed(precision: str, provider: str, started: float, reason: str) -> Report:
    nan = float("nan")
    return Report(
        precision, provider, nan, nan, nan, 0.0, 0, 0, time.perf_counter() - started, False, reason
    )
