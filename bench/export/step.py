"""export_bench's export step: our pipeline and optimum's exporter, timed, one ONNX file per
precision (redone unvalidated where validation failed) and its size on disk."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from streamasr.export import convert
from streamasr.export.errors import ValidationFailedError
from streamasr.export.pipeline import ExportConfig, run_export
from streamasr.server.manifest import MANIFEST_NAME, PRECISIONS, InputSpec, Manifest, read_manifest

from .results import ExportFigures

log = logging.getLogger("bench.export_bench")  # its log lines are export_bench's


class StepRecorder(logging.Handler):
    """Collects the pipeline's "done in" step timings from its log records.

    ``ExportResult.timings`` holds them too, but run_export raises ValidationFailedError
    without returning the result, so a failed validation would lose them.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.timings: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if str(record.msg).endswith("done in %.1f s") and isinstance(args, tuple):
            step, elapsed = args[2], args[3]
            if isinstance(elapsed, float):
                self.timings[str(step)] = elapsed


def export_ours(checkpoint: Path, out_root: Path) -> tuple[Path, dict[str, float], dict[str, str]]:
    """Run our export pipeline; its folder, step timings and validation failures."""
    recorder = StepRecorder()
    pipeline_log = logging.getLogger("streamasr.export.pipeline")
    pipeline_log.addHandler(recorder)
    config = ExportConfig(model=str(checkpoint), out_root=out_root, precisions=PRECISIONS)
    failures: dict[str, str] = {}
    try:
        timings = run_export(config).timings
    except ValidationFailedError as exc:
        log.warning("%s", exc)
        timings = recorder.timings
        failures = dict(f.split(": ", 1) for f in exc.failures)
    finally:
        pipeline_log.removeHandler(recorder)
    return out_root / checkpoint.name, timings, failures


def precision_files(
    folder: Path, manifest: Manifest | None, checkpoint: Path, scratch: Path
) -> dict[str, Path]:
    """One ONNX file per precision: the export's, or the same conversion redone where
    validation failed (so that its size and speed can still be measured)."""
    written = manifest.precisions if manifest is not None else {}
    files = {p: folder / e.file for p, e in written.items()}
    for precision in PRECISIONS:  # fp32 first: the others are converted from it
        if precision not in files:
            log.info("redoing the %s conversion outside the pipeline, unvalidated", precision)
            files[precision] = unvalidated_file(precision, files, checkpoint, scratch)
    return files


def unvalidated_file(
    precision: str, files: dict[str, Path], checkpoint: Path, scratch: Path
) -> Path:
    """The pipeline's conversion of one precision, without validation."""
    from streamasr.export.source import load_checkpoint

    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"model.{precision}.onnx"
    if precision == "fp32":
        convert.fp32_file(load_checkpoint(str(checkpoint)), out)
    else:
        {"fp16": convert.fp16_file, "int8": convert.int8_file}[precision](files["fp32"], out)
    return out


def file_bytes(path: Path) -> int:
    """Size of a graph and its external data."""
    return sum(p.stat().st_size for p in convert.side_files(path))


def optimum_export(checkpoint: Path, out: Path) -> tuple[Path | None, float | None]:
    """optimum's own export of the checkpoint (for ORTModelForCTC) and its seconds."""
    from optimum.exporters.onnx import main_export

    started = time.perf_counter()
    try:
        main_export(str(checkpoint), out, task="automatic-speech-recognition", do_validation=False)
    except (ValueError, KeyError, NotImplementedError) as exc:
        log.warning("optimum cannot export %s: %s", checkpoint.name, exc)
        return None, None
    return out, time.perf_counter() - started


def export_all(checkpoint: Path, root: Path) -> tuple[ExportFigures, dict[str, Path], InputSpec]:
    """Our export, timed, with one file per precision and the graph's input spec."""
    started = time.perf_counter()
    folder, timings, failures = export_ours(checkpoint, root / "exports")
    total = time.perf_counter() - started
    steps = {step.replace(f"{root}/", ""): s for step, s in timings.items()}
    manifest = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else None
    files = precision_files(folder, manifest, checkpoint, root / "unvalidated")
    sizes = {p: file_bytes(f) for p, f in files.items()}
    spec = manifest.input if manifest is not None else checkpoint_input(checkpoint)
    return ExportFigures(total, steps, sizes, failures), files, spec


def checkpoint_input(checkpoint: Path) -> InputSpec:
    """The graph input the exporter derives from a checkpoint (when no manifest was written)."""
    from streamasr.export.source import load_checkpoint

    return load_checkpoint(str(checkpoint)).input
