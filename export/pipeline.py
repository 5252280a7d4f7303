"""The export as a sequence of steps, built in a temporary folder and moved into place whole."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from streamasr.server.engine.preset_rules import rule_section
from streamasr.server.engine.vad import VAD_FILE
from streamasr.server.errors import ManifestError
from streamasr.server.manifest import (
    MANIFEST_NAME,
    PRECISIONS,
    Manifest,
    PrecisionEntry,
    VadEntry,
    read_manifest,
    sha256_file,
    write_manifest,
)
from streamasr.server.options.presets import StreamingSection

from . import convert, validate
from .errors import ExportError, ValidationFailedError
from .source import Checkpoint, load_checkpoint

log = logging.getLogger(__name__)

INTENDED_PROVIDER = {
    "fp32": "CPUExecutionProvider",
    "fp16": "CUDAExecutionProvider",
    "int8": "CPUExecutionProvider",
}


@dataclass(frozen=True)
class ExportConfig:
    """What ``asr-export`` was asked to do."""

    model: str
    out_root: Path = Path("models")
    precisions: tuple[str, ...] = PRECISIONS
    language: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise ExportError(f"precisions must be among {', '.join(PRECISIONS)}; got {unknown}")


@dataclass
class ExportResult:
    """Where the export went and what each precision measured."""

    folder: Path
    manifest: Manifest
    reports: dict[str, validate.Report] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class Steps:
    """One numbered progress line per step, logged when it ends, with its time and figures."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time the step; what the caller appends to the yielded list ends its line."""
        self.done += 1
        log.debug("[%d/%d] %s ...", self.done, self.total, name)
        notes: list[str] = []
        started = time.perf_counter()
        yield notes
        elapsed = time.perf_counter() - started
        self.timings[name] = elapsed
        figures = "".join(f", {note}" for note in notes)
        log.info("[%d/%d] %s: %.1f s%s", self.done, self.total, name, elapsed, figures)


def run_export(config: ExportConfig) -> ExportResult:
    """Export, validate and publish; raise :class:`ExportError` on any failure."""
    steps = Steps(total=3 + 2 * len(config.precisions))
    with steps.step(f"loading {config.model}"):
        checkpoint = load_checkpoint(config.model, config.language)
    dest = config.out_root / checkpoint.name
    existing = _existing(dest) if not config.force else None
    todo = [p for p in config.precisions if existing is None or p not in existing.precisions]
    if existing is not None and not todo:
        log.info(
            "%s already has %s: nothing to do (use --force to redo)",
            dest,
            ", ".join(config.precisions),
        )
        return ExportResult(dest, existing, skipped=list(config.precisions))
    config.out_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{checkpoint.name}.", dir=config.out_root))
    try:
        return _build(
            config, checkpoint, dest=dest, work=work, existing=existing, todo=todo, steps=steps
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _existing(dest: Path) -> Manifest | None:
    if not (dest / MANIFEST_NAME).exists():
        return None
    try:
        manifest = read_manifest(dest)
    except ManifestError as exc:
        log.warning("ignoring the existing export: %s", exc)
        return None
    present = {p: e for p, e in manifest.precisions.items() if (dest / e.file).is_file()}
    return Manifest(**{**manifest.__dict__, "precisions": present})


def _build(
    config: ExportConfig,
    checkpoint: Checkpoint,
    *,
    dest: Path,
    work: Path,
    existing: Manifest | None,
    todo: list[str],
    steps: Steps,
) -> ExportResult:
    entries: dict[str, PrecisionEntry] = {}
    skipped: list[str] = []
    if existing is not None:
        for precision, entry in existing.precisions.items():
            for path in convert.side_files(dest / entry.file):
                os.link(path, work / path.name)
            entries[precision] = entry
            skipped.append(precision)
    items = validate.probes()
    with steps.step("running PyTorch on the validation inputs"):
        reference = validate.torch_reference(
            checkpoint.model, checkpoint.input, checkpoint.vocabulary, items
        )
    fp32 = work / "model.fp32.onnx"
    if not fp32.exists():
        with steps.step("exporting fp32"):
            convert.fp32_file(checkpoint, fp32)
    reports = {
        precision: _convert_and_validate(
            checkpoint, precision, work=work, reference=reference, items=items, steps=steps
        )
        for precision in todo
    }
    for precision, report in reports.items():
        if report.passed:
            entries[precision] = _entry(work / f"model.{precision}.onnx", precision, report)
    # Failed files are removed only now: fp16 and int8 are converted from fp32 even
    # when fp32 itself failed its check.
    for precision in [*todo, "fp32"]:
        path = work / f"model.{precision}.onnx"
        if precision not in entries and path.exists():
            for extra in convert.side_files(path):
                extra.unlink()
    failures = [f"{p}: {r.reason}" for p, r in reports.items() if not r.passed]
    if not entries:
        raise ValidationFailedError(failures)
    manifest = _manifest(checkpoint, {p: entries[p] for p in PRECISIONS if p in entries})
    manifest = replace(
        manifest,
        streaming=_streaming(existing, checkpoint),
        vad=_copy_vad(work),
    )
    with steps.step(f"writing {dest}"):
        write_manifest(manifest, work)
        _publish(work, dest)
    result = ExportResult(dest, manifest, reports, skipped, steps.timings)
    if failures:
        raise ValidationFailedError(failures)
    return result


def _convert_and_validate(
    checkpoint: Checkpoint,
    precision: str,
    *,
    work: Path,
    reference: validate.Reference,
    items: list[validate.Probe],
    steps: Steps,
) -> validate.Report:
    """Make ``model.PRECISION.onnx`` from the fp32 file (fp32 itself is there) and judge it."""
    path = work / f"model.{precision}.onnx"
    produce = {"fp16": convert.fp16_file, "int8": convert.int8_file}
    if precision in produce:
        with steps.step(f"converting to {precision}"):
            produce[precision](work / "model.fp32.onnx", path)
    with steps.step(f"validating {precision}") as notes:
        report = validate.validate_file(
            path,
            precision,
            spec=checkpoint.input,
            vocab=checkpoint.vocabulary,
            reference=reference,
            items=items,
            providers=_providers(precision),
        )
        notes.append(
            f"max|dlogit| {report.max_abs_diff:.3g}, agreement {report.agreement:.3f}, "
            f"{report.identical_transcripts}/{report.transcripts} transcripts as PyTorch"
        )
        notes.append("passed" if report.passed else f"FAILED: {report.reason}")
    return report


def _providers(precision: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if precision == "fp16" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _entry(path: Path, precision: str, report: validate.Report) -> PrecisionEntry:
    files = convert.side_files(path)
    figures = report.to_dict()
    figures["note"] = (
        "validated on CUDA"
        if report.provider == "CUDAExecutionProvider"
        else "validated on CPU (onnxruntime runs fp16 graphs on CPU; serve fp16 on CUDA)"
        if precision == "fp16"
        else "validated on CPU"
    )
    figures["tolerance"] = validate.TOLERANCES[precision].__dict__
    return PrecisionEntry(
        file=path.name,
        bytes=sum(f.stat().st_size for f in files),
        sha256=sha256_file(path),
        provider=INTENDED_PROVIDER[precision],
        validation=figures,
        external_data=tuple(f.name for f in files[1:]),
    )


def _manifest(checkpoint: Checkpoint, entries: dict[str, PrecisionEntry]) -> Manifest:
    return Manifest(
        name=checkpoint.name,
        family=checkpoint.family,
        layout=checkpoint.layout,
        source=checkpoint.source,
        input=checkpoint.input,
        output_name="logits",
        vocabulary=checkpoint.vocabulary,
        language=checkpoint.language,
        precisions=entries,
        tools=tool_versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _streaming(existing: Manifest | None, checkpoint: Checkpoint) -> StreamingSection:
    """The presets built by rules from the model's frame geometry, ``balanced`` as the defaults
    (``python -m bench tune`` replaces them with measured ones); a re-export keeps a section with
    a tuned preset."""
    kept = existing.streaming if existing else None
    if kept is not None and any(p.tuned for p in kept.presets.values()):
        return kept
    return rule_section(checkpoint.input)


VAD_WHEEL = "silero-vad"
VAD_IN_WHEEL = "silero_vad/data/silero_vad.onnx"


def _copy_vad(work: Path) -> VadEntry | None:
    """Silero VAD's ONNX file, copied from the installed ``silero-vad`` wheel (the ``export``
    extra) into the export, so the server runs it with onnxruntime and never needs the wheel
    or torch. The package is not imported (its ``__init__`` imports torch): the file is read
    through the distribution's metadata. Without the wheel the export has no VAD (the server's
    ``--gate auto`` then uses the energy gate)."""
    try:
        dist = metadata.distribution(VAD_WHEEL)
    except metadata.PackageNotFoundError:
        log.warning("%s is not installed: the export gets no VAD file", VAD_WHEEL)
        return None
    source = Path(str(dist.locate_file(VAD_IN_WHEEL)))
    if not source.is_file():
        log.warning("%s %s has no %s: no VAD file", VAD_WHEEL, dist.version, VAD_IN_WHEEL)
        return None
    target = work / VAD_FILE
    shutil.copyfile(source, target)
    return VadEntry(
        file=VAD_FILE,
        bytes=target.stat().st_size,
        sha256=sha256_file(target),
        source=f"{VAD_WHEEL} {dist.version} wheel, {VAD_IN_WHEEL}",
    )


def tool_versions() -> dict[str, str]:
    """Versions of the packages that made the files."""
    names = (
        "streamasr",
        "torch",
        "transformers",
        "optimum",
        "optimum-onnx",
        "onnx",
        "onnxruntime",
        "onnxconverter-common",
    )
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _publish(work: Path, dest: Path) -> None:
    """Swap the finished folder into place; the old one is removed only after the swap."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    work.chmod(0o755)
    work.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
