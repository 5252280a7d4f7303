"""``asr-client``: command-line clients. ``transcribe`` runs files through a local engine.

    asr-client transcribe FILE... --model models/NAME [--stream] [--json]

``transcribe`` loads the model in-process (no server): by default each file is decoded as one
window, the offline reference; ``--stream`` feeds it through the streaming path in 20 ms frames
instead, with the default stream settings. Text goes to stdout, one line per file, or with
``--json`` one JSON object per file with its segments and timed words.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from streamasr.server.engine import Engine, EngineConfig
from streamasr.server.errors import AsrError
from streamasr.server.offline import transcribe_file
from streamasr.server.runtime import RuntimeConfig

log = logging.getLogger("streamasr.client")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-client", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    files = commands.add_parser("transcribe", help="transcribe audio files with a local engine")
    files.add_argument("files", nargs="+", type=Path, help="audio files (any rate, mono/stereo)")
    files.add_argument("--model", type=Path, required=True, help="an asr-export output folder")
    files.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    files.add_argument("--precision", choices=["fp32", "fp16", "int8"], default=None)
    files.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    files.add_argument("--stream", action="store_true", help="decode through the streaming path")
    files.add_argument("--json", action="store_true", help="segments and words as JSON lines")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING"])
    return parser


def run_transcribe(args: argparse.Namespace) -> int:
    runtime = RuntimeConfig(
        device=args.device, precision=args.precision, intra_op_threads=args.threads
    )
    with Engine(args.model, EngineConfig(runtime=runtime)) as engine:
        for path in args.files:
            result = transcribe_file(engine, path, streaming=args.stream)
            if args.json:
                segments = [asdict(s) for s in result.segments]
                print(json.dumps({"file": str(path), "text": result.text, "segments": segments}))
            else:
                print(result.text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run_transcribe(args)
    except AsrError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
