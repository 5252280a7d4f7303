"""``asr-export``: one command from a checkpoint to validated ONNX files and a manifest."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streamasr.server.manifest import PRECISIONS

from .aliases import format_table
from .errors import ExportError, ValidationFailedError
from .source import resolve
from .triton_repository import TritonOptions, cli_step, is_export_folder

if TYPE_CHECKING:
    from .pipeline import ExportResult

LIBRARY_LOGGERS = ("transformers", "optimum", "torch", "onnxruntime", "onnx")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-export",
        description="Convert a fine-tuned CTC checkpoint (alias, Hugging Face id or local "
        "save_pretrained folder) to ONNX in fp32, fp16 and int8, validate each file against "
        "PyTorch and write manifest.json.",
    )
    parser.add_argument("model", nargs="?", help="alias (see --list), hub id or local folder")
    parser.add_argument("--list", action="store_true", help="print the model guide and exit")
    parser.add_argument(
        "--punctuation",
        metavar="CHECKPOINT",
        help="export a punctuation and casing token-classification checkpoint instead "
        "(docs/punctuation.md) into --out/punctuation-NAME",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("models"), help="root folder (default: models)"
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=None,
        help="precisions to write (default: all three; fp32 and int8 with --punctuation)",
    )
    parser.add_argument(
        "--language", help="language code (MMS adapters, e.g. fra); names the export"
    )
    parser.add_argument(
        "--force", action="store_true", help="redo precisions that are already exported"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of asr-export's own progress lines (default: INFO)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show the libraries' log lines (transformers, optimum, the quantizer)",
    )
    parser.add_argument(
        "--print-name",
        action="store_true",
        help="print the folder name MODEL would be exported to (under --out) and exit; loads "
        "nothing (asr-server uses it to find a cached export)",
    )
    parser.add_argument(
        "--triton-repository",
        type=Path,
        metavar="DIR",
        help="also write a Triton model repository (one model per precision) into DIR; MODEL "
        "may then be an export folder with manifest.json, used as it is",
    )
    parser.add_argument(
        "--triton-tensorrt",
        action="store_true",
        help="with --triton-repository: add the TensorRT accelerator (FP16) to the GPU model",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print(format_table())
        return 0
    if args.punctuation:
        configure_logging(args.log_level, verbose=args.verbose)
        return punctuation_step(args.punctuation, args.out, args.precision)
    if not args.model:
        build_parser().error("MODEL is required (or --list)")
    if args.print_name:
        return print_name(args.model, args.language)
    configure_logging(args.log_level, verbose=args.verbose)
    from .pipeline import ExportConfig, run_export  # torch and onnx behind it

    precisions = tuple(dict.fromkeys(args.precision or PRECISIONS))
    triton = TritonOptions(tensorrt=args.triton_tensorrt)
    if args.triton_repository is not None and is_export_folder(Path(args.model)):
        return cli_step(Path(args.model), args.triton_repository, precisions, triton)
    config = ExportConfig(
        model=args.model,
        out_root=args.out,
        precisions=precisions,
        language=args.language,
        force=args.force,
    )
    try:
        result = run_export(config)
    except ValidationFailedError as exc:
        sys.stderr.write(f"asr-export: error: {exc}\n")
        return 3
    except ExportError as exc:
        sys.stderr.write(f"asr-export: error: {exc}\n")
        return 1
    print(summary(result))
    if args.triton_repository is not None:
        return cli_step(result.folder, args.triton_repository, precisions, triton)
    return 0


def punctuation_step(checkpoint: str, out_root: Path, precisions: list[str] | None) -> int:
    """``--punctuation``: export, validate and print where the files went."""
    from .punctuation import PunctuationExportConfig, folder_name, run

    try:
        config = PunctuationExportConfig(
            checkpoint,
            out_root / folder_name(checkpoint),
            tuple(dict.fromkeys(precisions or ("fp32", "int8"))),
        )
        manifest = run(config)
    except ValidationFailedError as exc:
        sys.stderr.write(f"asr-export: error: {exc}\n")
        return 3
    except ExportError as exc:
        sys.stderr.write(f"asr-export: error: {exc}\n")
        return 1
    kept = ", ".join(f"{p} {e.bytes / 1e6:.1f} MB" for p, e in manifest.models.items())
    print(f"{manifest.source} ({manifest.layout}) -> {config.out}: {kept}")
    return 0


def print_name(model: str, language: str | None) -> int:
    """``--print-name``: the export folder's name, or the reason MODEL cannot be exported."""
    try:
        name = resolve(model, language)[1]
    except ExportError as exc:
        sys.stderr.write(f"asr-export: error: {exc}\n")
        return 1
    print(name)
    return 0


def configure_logging(level: str, *, verbose: bool) -> None:
    """asr-export's own lines at ``level``, one per step; the libraries' lines only when
    ``verbose`` (else only their errors: the quantizer alone logs hundreds of INFO lines)."""
    if verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info")  # transformers and optimum
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    else:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        logging.basicConfig(level=logging.ERROR, format="%(message)s")
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("streamasr").setLevel(level)


def summary(result: ExportResult) -> str:
    """The table printed at the end of an export."""
    lines = [f"\n{result.manifest.name} -> {result.folder}", ""]
    header = (
        f"{'precision':<9} {'MB':>9} {'vs fp32':>8} {'max|dlogit|':>12} {'agree':>7} "
        f"{'runtime':<22} status"
    )
    lines += [header, "-" * len(header)]
    fp32 = result.manifest.precisions.get("fp32")
    for precision, entry in result.manifest.precisions.items():
        figures = entry.validation
        ratio = f"{entry.bytes / fp32.bytes:.1%}" if fp32 else "-"
        status = "kept" if precision in result.skipped else "written"
        lines.append(
            f"{precision:<9} {entry.bytes / 1e6:>9.1f} {ratio:>8} "
            f"{float(figures.get('max_abs_diff', float('nan'))):>12.3g} "
            f"{float(figures.get('agreement', float('nan'))):>7.3f} "
            f"{figures.get('provider', '')!s:<22} {status}"
        )
    streaming = result.manifest.streaming
    if streaming is not None and streaming.presets:
        kind = "measured" if streaming.presets_tuned else "by rule; python -m bench tune measures"
        names = ", ".join(f"{n} {p.windows.label()}" for n, p in streaming.presets.items())
        lines += ["", f"presets ({kind}): {names}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
