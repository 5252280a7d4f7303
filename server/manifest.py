"""The manifest: the one contract between ``export/`` and ``server/``.

``asr-export`` writes ``manifest.json`` beside the ONNX files; the server reads
it and needs nothing else to run a model: the input kind and its framing, the
normalisation, the vocabulary with its blank and word delimiter, and one entry
per precision with the file, its checksum, the provider it is meant for and
the figures of its validation against PyTorch.

This module is plain Python (no numpy, no torch) so that both sides can import
it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.errors import ManifestError, ModelFileError
from streamasr.server.options.presets import StreamingSection

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1

InputKind = Literal["waveform", "fbank"]
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class SourceInfo:
    """Where the checkpoint came from."""

    id: str
    """Hub id or the local folder's path as given."""
    kind: Literal["hub", "local"]
    revision: str | None = None
    """Hub commit hash, when known."""
    folder_sha256: str | None = None
    """For local folders: sha256 over the sorted (name, content) of its files."""


@dataclass(frozen=True)
class InputSpec:
    """What the graph takes and how its output frames map onto samples."""

    kind: InputKind
    """``waveform``: float samples; ``fbank``: stacked log-mel filter banks."""
    name: str
    """Name of the graph input (``input_values`` or ``input_features``)."""
    sample_rate: int
    frame_stride: int
    """Samples per output frame (320 = 20 ms at 16 kHz)."""
    receptive_field: int
    """Samples seen by one output frame of the convolutional (or fbank) front end."""
    normalize: bool
    """True when each input window is normalised to zero mean, unit variance
    (waveform) or per mel bin (fbank), as the checkpoint's feature extractor does."""
    attention_mask: bool
    """Whether the checkpoint's feature extractor returns an attention mask. The
    exported graphs never take one: windows are run unpadded."""
    conv_kernel: tuple[int, ...] = ()
    conv_stride: tuple[int, ...] = ()
    """Waveform models: the feature encoder's kernels and strides (output length rule)."""
    feature_size: int = 0
    """Fbank models: features per frame after stacking (160 = 80 mel bins x 2)."""
    num_mel_bins: int = 0
    stack_stride: int = 0
    """Fbank models: consecutive 10 ms fbank frames stacked into one model frame."""
    adapter_layers: int = 0
    adapter_kernel: int = 0
    adapter_stride: int = 0
    """Checkpoints fine-tuned with an adapter (``add_adapter``) downsample the encoder
    output further with these strided convolutions (padding ``kernel // 2``)."""

    def num_frames(self, num_samples: int) -> int:
        """Number of output frames the graph produces for ``num_samples`` samples."""
        length = self._front_end_frames(num_samples)
        pad = self.adapter_kernel // 2
        for _ in range(self.adapter_layers):
            if length <= 0:
                return 0
            length = (length + 2 * pad - self.adapter_kernel) // self.adapter_stride + 1
        return max(length, 0)

    def _front_end_frames(self, num_samples: int) -> int:
        if self.kind == "waveform":
            length = num_samples
            for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
                if length < kernel:
                    return 0
                length = (length - kernel) // stride + 1
            return length
        if num_samples < FBANK_WINDOW:
            return 0
        return (1 + (num_samples - FBANK_WINDOW) // FBANK_HOP) // self.stack_stride


FBANK_WINDOW = 400
"""Fbank frame length in samples (25 ms at 16 kHz)."""
FBANK_HOP = 160
"""Fbank frame shift in samples (10 ms at 16 kHz)."""


@dataclass(frozen=True)
class Vocabulary:
    """CTC output symbols, indexed by logit column."""

    tokens: tuple[str, ...]
    blank_id: int
    word_delimiter: str | None
    """Token that separates words (``|`` for wav2vec2 tokenizers), if any."""

    @property
    def word_delimiter_id(self) -> int | None:
        if self.word_delimiter is None or self.word_delimiter not in self.tokens:
            return None
        return self.tokens.index(self.word_delimiter)


@dataclass(frozen=True)
class PrecisionEntry:
    """One validated ONNX file."""

    file: str
    bytes: int
    sha256: str
    provider: str
    """Intended onnxruntime provider: CUDAExecutionProvider or CPUExecutionProvider."""
    validation: Mapping[str, Any] = field(default_factory=dict)
    """Figures of the check against PyTorch (max abs logit difference, transcript
    agreement, where it ran and how)."""
    external_data: tuple[str, ...] = ()
    """Side files holding weights when the graph passes the 2 GB protobuf limit."""


@dataclass(frozen=True)
class VadEntry:
    """The voice-activity model copied into the export (Silero VAD's ONNX file)."""

    file: str
    bytes: int
    sha256: str
    source: str
    """Where it came from: ``silero-vad 6.2.3 wheel, silero_vad/data/silero_vad.onnx``."""
    frame_samples: int = 512
    """Samples per call at ``sample_rate`` (its native frame)."""
    context_samples: int = 64
    """Samples of the previous frame prepended to each call."""
    sample_rate: int = SAMPLE_RATE


@dataclass(frozen=True)
class DecoderSection:
    """Optional ``decoder`` section: how this model is best decoded (the server's flags win)."""

    lm: str | None = None
    """KenLM file (ARPA or binary) relative to the model folder."""
    beam_width: int | None = None
    lm_weight: float | None = None
    word_score: float | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DecoderSection:
        unknown = sorted(set(raw) - {"lm", "beam_width", "lm_weight", "word_score"})
        if unknown:
            raise ValueError(f"unknown decoder field {unknown[0]!r}")

        def number(name: str) -> float | None:
            value = raw.get(name)
            return None if value is None else float(value)

        beam = raw.get("beam_width")
        return cls(
            lm=None if raw.get("lm") is None else str(raw["lm"]),
            beam_width=None if beam is None else int(beam),
            lm_weight=number("lm_weight"),
            word_score=number("word_score"),
        )


@dataclass(frozen=True)
class Manifest:
    """Everything the server needs to run an exported model."""

    name: str
    family: str
    """``wav2vec2``, ``hubert``, ``data2vec-audio`` or ``wav2vec2-bert``."""
    layout: str
    """``group`` (GroupNorm feature encoder, base checkpoints), ``layer`` or ``fbank``."""
    source: SourceInfo
    input: InputSpec
    output_name: str
    vocabulary: Vocabulary
    language: str | None
    precisions: Mapping[str, PrecisionEntry]
    tools: Mapping[str, str]
    created: str
    format_version: int = FORMAT_VERSION
    decoder: DecoderSection | None = None
    """Beam search and LM settings for this model, when its export ships them."""
    streaming: StreamingSection | None = None
    """Window defaults and latency presets (optional; see :mod:`.presets`)."""
    vad: VadEntry | None = None
    """The voice-activity model in the folder, if the export has one (``--gate silero``)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.decoder is None:
            out.pop("decoder")  # optional: absent rather than null
        out.pop("streaming")
        out.pop("vad")
        if self.streaming is not None:
            out["streaming"] = self.streaming.to_dict()
        if self.vad is not None:
            out["vad"] = asdict(self.vad)
        return out

    def entry(self, precision: str) -> PrecisionEntry:
        try:
            return self.precisions[precision]
        except KeyError:
            available = ", ".join(sorted(self.precisions)) or "none"
            raise ManifestError(
                self.name, f"no {precision} file in this export (available: {available})"
            ) from None


def write_manifest(manifest: Manifest, folder: Path) -> Path:
    """Write ``manifest.json`` into ``folder`` and return its path."""
    path = folder / MANIFEST_NAME
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/manifest.json``; raise :class:`ManifestError` on any defect."""
    path = folder / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(path, "no manifest: is this an asr-export output folder?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, f"unreadable manifest ({exc})") from None
    if not isinstance(raw, dict):
        raise ManifestError(path, "manifest is not a JSON object")
    try:
        return _parse(cast(dict[str, Any], raw))
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(path, f"malformed manifest ({type(exc).__name__}: {exc})") from None


def _parse(raw: dict[str, Any]) -> Manifest:
    version = int(raw["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"format_version {version} is not {FORMAT_VERSION}")
    src = raw["source"]
    inp = dict(raw["input"])
    inp["conv_kernel"] = tuple(int(k) for k in inp.get("conv_kernel", ()))
    inp["conv_stride"] = tuple(int(s) for s in inp.get("conv_stride", ()))
    if inp["kind"] not in ("waveform", "fbank"):
        raise ValueError(f"input kind {inp['kind']!r}")
    voc = raw["vocabulary"]
    tokens = tuple(str(t) for t in voc["tokens"])
    blank_id = int(voc["blank_id"])
    if not 0 <= blank_id < len(tokens):
        raise ValueError(f"blank_id {blank_id} outside the vocabulary of {len(tokens)}")
    precisions = {
        name: PrecisionEntry(
            file=str(e["file"]),
            bytes=int(e["bytes"]),
            sha256=str(e["sha256"]),
            provider=str(e["provider"]),
            validation=dict(e.get("validation", {})),
            external_data=tuple(str(x) for x in e.get("external_data", ())),
        )
        for name, e in dict(raw["precisions"]).items()
    }
    return Manifest(
        name=str(raw["name"]),
        family=str(raw["family"]),
        layout=str(raw["layout"]),
        source=SourceInfo(**src),
        input=InputSpec(**inp),
        output_name=str(raw["output_name"]),
        vocabulary=Vocabulary(tokens, blank_id, voc.get("word_delimiter")),
        language=raw.get("language"),
        precisions=precisions,
        tools={str(k): str(v) for k, v in dict(raw.get("tools", {})).items()},
        created=str(raw.get("created", "")),
        format_version=version,
        decoder=DecoderSection.parse(raw["decoder"]) if raw.get("decoder") else None,
        streaming=_streaming(raw.get("streaming")),
        vad=None if raw.get("vad") is None else VadEntry(**dict(raw["vad"])),
    )


def _streaming(raw: object) -> StreamingSection | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TypeError("streaming is not an object")
    return StreamingSection.from_dict(cast(dict[str, Any], raw))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_path(folder: Path, manifest: Manifest, precision: str, verify: bool = False) -> Path:
    """Path of a precision's ONNX file, checked to exist (and, with ``verify``, its sha256)."""
    entry = manifest.entry(precision)
    path = folder / entry.file
    if not path.is_file():
        raise ModelFileError(path, f"{precision} file named by the manifest is missing")
    if verify and sha256_file(path) != entry.sha256:
        raise ModelFileError(path, f"{precision} file does not match its manifest sha256")
    return path
