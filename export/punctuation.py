"""``asr-export --punctuation``: a token-classification checkpoint to validated ONNX files.

The checkpoint's labels must follow one of the layouts of
:mod:`streamasr.server.decoding.punctuation.labels` (``mark+case`` or ``punct-only``); its
tokenizer must be a fast one (``tokenizer.json``), which the torch-free runtime loads with
``tokenizers``.
fp32 comes from ``torch.onnx.export`` (dynamic batch and sequence axes), int8 from
onnxruntime's dynamic quantisation of fp32. Each file is compared with PyTorch on fixed word
lists (:data:`PROBES`): the largest logit difference over real tokens and the share of words
whose label agrees. A file beyond :data:`THRESHOLDS` is left out and the export fails.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from streamasr.server.decoding.punctuation.labels import UnknownLayoutError, detect_layout
from streamasr.server.decoding.punctuation.manifest import (
    PRECISIONS,
    TOKENIZER_FILE,
    FileEntry,
    PunctuationManifest,
    write_manifest,
)
from streamasr.server.manifest import sha256_file

from .errors import ExportError, ModelNotFoundError, UnsupportedModelError, ValidationFailedError

log = logging.getLogger(__name__)

OPSET: Final = 17
MAX_LENGTH_CAP: Final = 512
THRESHOLDS: Final[dict[str, tuple[float, float]]] = {
    "fp32": (1e-3, 1.0),
    "int8": (4.0, 0.95),
}
"""Per precision: the largest |logit difference| allowed over real tokens, and the smallest
share of words whose label (argmax on the word's first sub-token) must agree with PyTorch."""
PROBES: Final[tuple[str, ...]] = (
    "WELL I THINK SO BUT I AM NOT SURE",
    "WHAT TIME IS IT IN LONDON",
    "THE MEETING STARTS AT NINE AND ENDS AT NOON WE WILL HAVE LUNCH AFTER THAT",
    "HE SAID HELLO",
    "IN THE BEGINNING GOD CREATED THE HEAVEN AND THE EARTH",
    "A PROGRAMMER IS A MACHINE FOR TURNING COFFEE INTO CODE",
    "YES",
    "DON'T YOU KNOW WHERE SHE'S GOING TONIGHT",
)


class PunctuationLayoutError(UnsupportedModelError):
    """The checkpoint's labels follow no supported layout."""


@dataclass(frozen=True)
class PunctuationExportConfig:
    checkpoint: str
    out: Path
    precisions: tuple[str, ...] = PRECISIONS

    def __post_init__(self) -> None:
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise ExportError(f"--precision must be among {', '.join(PRECISIONS)}; got {unknown}")


@dataclass(frozen=True)
class Loaded:
    model: Any
    tokenizer: Any
    labels: tuple[str, ...]
    max_length: int
    input_names: tuple[str, ...]


def probe_words() -> list[list[str]]:
    """The validation word lists: :data:`PROBES` and seeded shuffles of their words, one of
    them long enough to fill a 128-token window."""
    words = [p.split() for p in PROBES]
    pool = [w for ws in words for w in ws]
    rng = random.Random(19)
    extra = [rng.sample(pool, k) for k in (5, 17, 40)] + [rng.choices(pool, k=110)]
    return words + extra


def load(checkpoint: str) -> Loaded:
    """The model and fast tokenizer of ``checkpoint``; the layout checked before anything."""
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(checkpoint, str(exc).splitlines()[0]) from exc
    labels = tuple(config.id2label[i] for i in range(len(config.id2label)))
    try:
        detect_layout(labels)
    except UnknownLayoutError as exc:
        raise PunctuationLayoutError(checkpoint, str(exc)) from exc
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(checkpoint, "it has no fast tokenizer (tokenizer.json)")
    model = AutoModelForTokenClassification.from_pretrained(checkpoint).eval()
    offset = 2 if config.model_type in {"roberta", "xlm-roberta", "camembert"} else 0
    limit = min(config.max_position_embeddings - offset, MAX_LENGTH_CAP)
    if 0 < tokenizer.model_max_length < limit:
        limit = int(tokenizer.model_max_length)
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        names.append("token_type_ids")
    return Loaded(model, tokenizer, labels, limit, tuple(names))


def encode(loaded: Loaded, batch: list[list[str]]) -> tuple[dict[str, Any], list[list[int]]]:
    """Padded torch inputs for lower-cased word lists, and each word's first sub-token."""
    enc = loaded.tokenizer(
        [[w.lower() for w in ws] for ws in batch],
        is_split_into_words=True,
        truncation=True,
        max_length=loaded.max_length,
        padding=True,
        return_tensors="pt",
    )
    firsts = []
    for row in range(len(batch)):
        seen: set[int] = set()
        first = []
        for col, wid in enumerate(enc.word_ids(row)):
            if wid is not None and wid not in seen:
                seen.add(wid)
                first.append(col)
        firsts.append(first)
    return {n: enc[n] for n in loaded.input_names}, firsts


def fp32_file(loaded: Loaded, out: Path) -> Path:
    import torch

    class Logits(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            kwargs = dict(zip(loaded.input_names, inputs, strict=True))
            return self.model(**kwargs).logits

    inputs, _ = encode(loaded, probe_words()[:2])
    axes = {n: {0: "batch", 1: "sequence"} for n in loaded.input_names}
    with torch.no_grad():
        torch.onnx.export(
            Logits(loaded.model),
            tuple(inputs[n] for n in loaded.input_names),
            str(out),
            input_names=list(loaded.input_names),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch", 1: "sequence"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return out


def int8_file(fp32: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32),
        str(out),
        op_types_to_quantize=["MatMul", "Gemm"],
        weight_type=QuantType.QInt8,
        extra_options={"MatMulConstBOnly": True},
    )
    return out


def validate(
    loaded: Loaded, path: Path, precision: str, reference: NDArray[np.float32]
) -> dict[str, Any]:
    """Figures of ``path`` against PyTorch's ``reference`` logits on :func:`probe_words`."""
    import onnxruntime as ort

    inputs, firsts = encode(loaded, probe_words())
    mask = inputs["attention_mask"].numpy().astype(bool)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got: NDArray[np.float32] = session.run(
        None, {n: inputs[n].numpy().astype(np.int64) for n in loaded.input_names}
    )[0]
    diff = float(np.abs(got - reference)[mask].max())
    pairs = [
        (int(got[r, c].argmax()), int(reference[r, c].argmax()))
        for r, cols in enumerate(firsts)
        for c in cols
    ]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    limit_diff, limit_agree = THRESHOLDS[precision]
    passed = diff <= limit_diff and agreement >= limit_agree
    return {
        "max_abs_diff": diff,
        "agreement": agreement,
        "words": len(pairs),
        "thresholds": {"max_abs_diff": limit_diff, "agreement": limit_agree},
        "passed": passed,
    }


def torch_reference(loaded: Loaded) -> NDArray[np.float32]:
    import torch

    inputs, _ = encode(loaded, probe_words())
    with torch.no_grad():
        logits = loaded.model(**inputs).logits
    return logits.numpy().astype(np.float32)  # type: ignore[no-any-return]


def run(config: PunctuationExportConfig) -> PunctuationManifest:
    """Export, validate, write ``punctuation.json`` and move the folder into ``config.out``;
    raise :class:`ValidationFailedError` (after writing the files that passed) when one failed."""
    loaded = load(config.checkpoint)
    layout = detect_layout(loaded.labels)
    log.info("%s: layout %s, %d labels", config.checkpoint, layout, len(loaded.labels))
    config.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{config.out.name}.", dir=config.out.parent))
    try:
        reference = torch_reference(loaded)
        fp32 = fp32_file(loaded, work / "model.fp32.onnx")
        files = {"fp32": fp32}
        if "int8" in config.precisions:
            files["int8"] = int8_file(fp32, work / "model.int8.onnx")
        models: dict[str, FileEntry] = {}
        failures: list[str] = []
        for precision, path in files.items():
            figures = validate(loaded, path, precision, reference)
            log.info(
                "%s: max|dlogit| %.3g, agreement %.3f over %d words: %s",
                precision,
                figures["max_abs_diff"],
                figures["agreement"],
                figures["words"],
                "passed" if figures["passed"] else "FAILED",
            )
            if not figures["passed"]:
                failures.append(
                    f"{precision}: max|dlogit| {figures['max_abs_diff']:.3g}, agreement "
                    f"{figures['agreement']:.3f} (limits {THRESHOLDS[precision]})"
                )
            elif precision in config.precisions:
                models[precision] = _entry(path, figures)
        for precision, path in files.items():
            if precision not in models:
                path.unlink()
        if not models:
            raise ValidationFailedError(failures)
        manifest = _write(config, loaded, layout, work, models)
        if config.out.exists():
            shutil.rmtree(config.out)
        work.rename(config.out)
        if failures:
            raise ValidationFailedError(failures)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(
    config: PunctuationExportConfig,
    loaded: Loaded,
    layout: Any,
    work: Path,
    models: dict[str, FileEntry],
) -> PunctuationManifest:
    loaded.tokenizer.backend_tokenizer.save(str(work / TOKENIZER_FILE))
    manifest = PunctuationManifest(
        source=config.checkpoint,
        layout=layout,
        labels=loaded.labels,
        max_length=loaded.max_length,
        tokenizer=_entry(work / TOKENIZER_FILE, {}),
        models=models,
        input_names=loaded.input_names,
        tools={
            name: metadata.version(name)
            for name in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers")
        },
    )
    write_manifest(manifest, work)
    return manifest


def _entry(path: Path, figures: dict[str, Any]) -> FileEntry:
    return FileEntry(path.name, path.stat().st_size, sha256_file(path), figures)


def folder_name(checkpoint: str) -> str:
    """``punctuation-NAME`` for a local folder or a hub id (its last part)."""
    tail = checkpoint.rstrip("/").replace("\\", "/").split("/")[-1]
    return f"punctuation-{tail or 'model'}"
