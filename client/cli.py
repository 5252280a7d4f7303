"""``asr-client``: command-line clients for the streaming server, and a local transcriber.

    asr-client mic [--device D] [--rate HZ] [--list-devices] [--url URL] [--token T] [--insecure]
    asr-client file FILE... [--speed X | --realtime] [--format text|json|srt|vtt] [--out PATH]
    asr-client transcribe FILE... --model models/NAME [--stream] [--json]

``mic`` streams the default (or ``--device``) microphone at its own rate and shows the transcript
live: the partial rewritten in place, each final on a line; Ctrl-C sends stop and prints the
last final. ``file`` streams each file at its own rate, as fast as the server takes it or paced
with ``--speed``/``--realtime``, and writes text, JSON lines, SRT or WebVTT captions. Both talk
protocol v1 to ``asr-server`` (``--url``, default ws://localhost:2700/v1/stream; ``--token``, or
``ASR_TOKEN`` else ``ASR_AUTH_TOKEN`` in the environment; ``--insecure`` accepts a self-signed
wss certificate).

``transcribe`` loads the model in-process (no server): by default each file is decoded as one
window, the offline reference; ``--stream`` feeds it through the streaming path in 20 ms frames
instead, with the default stream settings. Text goes to stdout, one line per file, or with
``--json`` one JSON object per file with its segments and timed words.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from streamasr.server.constants import ENCODINGS
from streamasr.server.errors import AsrError
from streamasr.server.manifest import PRECISIONS

from .captions import FORMATS, CaptionFormat, render
from .console import LiveView
from .messages import ClientError
from .ws import DEFAULT_URL, ConnectOptions

log = logging.getLogger("streamasr.client")

_SUFFIX = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--url", default=DEFAULT_URL, help=f"stream endpoint (default {DEFAULT_URL})"
    )
    group.add_argument(
        "--token",
        default=os.environ.get("ASR_TOKEN") or os.environ.get("ASR_AUTH_TOKEN"),
        help="bearer token (default: $ASR_TOKEN, else the server's $ASR_AUTH_TOKEN)",
    )
    group.add_argument(
        "--insecure", action="store_true", help="wss: accept self-signed certificates"
    )
    group.add_argument("--encoding", choices=ENCODINGS, default="s16le", help="sample format sent")
    group.add_argument(
        "--endpoint-ms",
        type=int,
        default=None,
        help="silence that ends a segment, 100-10000 ms (default: the server's)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-client", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING"])
    commands = parser.add_subparsers(dest="command", required=True)

    mic = commands.add_parser("mic", help="stream a microphone to the server")
    mic.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    mic.add_argument("--device", default=None, help="input device index or name")
    mic.add_argument("--rate", type=int, default=None, help="sample rate (default: device's)")
    _add_connection(mic)

    file = commands.add_parser("file", help="stream audio files to the server, write captions")
    file.add_argument("files", nargs="+", type=Path, help="audio files (any rate, mono/stereo)")
    pace = file.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=None, help="pace at X times real time")
    pace.add_argument("--realtime", action="store_true", help="pace at real time (--speed 1)")
    file.add_argument("--format", choices=FORMATS, default="text", help="output format")
    file.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (default stdout); with several files and srt/vtt, a folder",
    )
    _add_connection(file)

    local = commands.add_parser("transcribe", help="transcribe audio files with a local engine")
    local.add_argument("files", nargs="+", type=Path, help="audio files (any rate, mono/stereo)")
    local.add_argument("--model", type=Path, required=True, help="an asr-export output folder")
    local.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    local.add_argument("--precision", choices=PRECISIONS, default=None)
    local.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    local.add_argument("--stream", action="store_true", help="decode through the streaming path")
    local.add_argument("--json", action="store_true", help="segments and words as JSON lines")
    local.add_argument(
        "--punctuation",
        type=Path,
        default=None,
        help="punctuation model folder (default: the export's punctuation/ folder, if any)",
    )
    return parser


def connect_options(args: argparse.Namespace) -> ConnectOptions:
    return ConnectOptions(url=args.url, token=args.token or None, insecure=args.insecure)


def run_transcribe(args: argparse.Namespace) -> int:
    from streamasr.server.engine.engine import Engine, EngineConfig
    from streamasr.server.engine.offline import transcribe_file
    from streamasr.server.inference.runtime import RuntimeConfig

    runtime = RuntimeConfig(
        device=args.device, precision=args.precision, intra_op_threads=args.threads
    )
    config = EngineConfig(runtime=runtime, punctuation=args.punctuation)
    with Engine(args.model, config) as engine:
        for path in args.files:
            result = transcribe_file(engine, path, streaming=args.stream)
            if args.json:
                segments = [asdict(s) for s in result.segments]
                print(json.dumps({"file": str(path), "text": result.text, "segments": segments}))
            else:
                print(result.text)
    return 0


async def _run_files(args: argparse.Namespace) -> int:
    from .file import FileOptions, stream_file

    fmt: CaptionFormat = args.format
    speed = 1.0 if args.realtime else args.speed
    options = FileOptions(speed=speed, encoding=args.encoding, endpoint_ms=args.endpoint_ms)
    folder = _output_folder(args.files, fmt, args.out)
    connect = connect_options(args)
    with contextlib.ExitStack() as stack:
        single: TextIO | None = None
        if folder is None:
            single = (
                stack.enter_context(args.out.open("w", encoding="utf-8"))
                if args.out is not None
                else sys.stdout
            )
        for path in args.files:
            transcript = await stream_file(path, connect, options)
            text = render(fmt, transcript.finals, str(path), transcript.audio_seconds)
            if folder is not None:
                target = folder / (path.stem + _SUFFIX[fmt])
                target.write_text(text, encoding="utf-8")
                log.info("wrote %s", target)
            elif single is not None:
                single.write(text)
                single.flush()
    return 0


def _output_folder(files: Sequence[Path], fmt: CaptionFormat, out: Path | None) -> Path | None:
    """The folder for one caption file per input, or None when everything goes to one stream."""
    several = len(files) > 1
    if out is not None and (out.is_dir() or (several and fmt in ("srt", "vtt"))):
        out.mkdir(parents=True, exist_ok=True)
        return out
    if several and fmt in ("srt", "vtt"):
        raise ClientError(f"{fmt} captions for several files need --out FOLDER")
    return None


async def _run_mic(args: argparse.Namespace) -> int:
    from .mic import MicOptions, list_devices, run_mic

    if args.list_devices:
        print(list_devices() or "PortAudio found no audio devices")
        return 0
    device: int | str | None = args.device
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    options = MicOptions(
        device=device, sample_rate=args.rate, encoding=args.encoding, endpoint_ms=args.endpoint_ms
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops

        def first_interrupt() -> None:
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C aborts

        loop.add_signal_handler(signal.SIGINT, first_interrupt)
    view = LiveView(sys.stdout)
    result = await run_mic(connect_options(args), options, view, stop)
    log.info(
        "%.1f s of audio at %d Hz, %d final(s), %d of %d block(s) dropped",
        result.audio_seconds,
        result.sample_rate,
        len(result.finals),
        result.dropped,
        result.blocks,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "transcribe":
            return run_transcribe(args)
        if args.command == "file":
            return asyncio.run(_run_files(args))
        return asyncio.run(_run_mic(args))
    except KeyboardInterrupt:
        return 130
    except (ClientError, AsrError, ValueError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
