"""Client test helpers: the real server as a subprocess, strict SRT/WebVTT parsers, audio."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
from numpy.typing import NDArray

# -- the server -------------------------------------------------------------------------------

_LISTENING = re.compile(r"listening on (wss?://\S+)")


@dataclass(frozen=True)
class LiveServer:
    """A running ``asr-server``: its base URL (``ws[s]://HOST:PORT``) and its log lines so far."""

    base: str
    log: list[str]

    @property
    def stream_url(self) -> str:
        return self.base + "/v1/stream"

    @property
    def http_base(self) -> str:
        return "http" + self.base.removeprefix("ws")


@contextlib.contextmanager
def run_server(
    model: Path, extra: Sequence[str] = (), startup_s: float = 60.0
) -> Iterator[LiveServer]:
    """``python -m streamasr.server.cli --model MODEL --port 0 ...`` until the block ends."""
    command = [
        sys.executable,
        "-m",
        "streamasr.server.cli",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        """Keep the log; hand over the URL once the model is ready (connections wait for it)."""
        assert process.stdout is not None
        base = None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match:
                base = match.group(1)
            elif base is not None and "model ready" in line:
                found.put(base)
        found.put(None)

    reader = threading.Thread(target=pump, name="asr-server-log", daemon=True)
    reader.start()
    try:
        try:
            base = found.get(timeout=startup_s)
        except queue.Empty:
            base = None
        if base is None:
            raise RuntimeError("asr-server did not start:\n" + "\n".join(lines[-30:]))
        base = base.rstrip("/").replace("0.0.0.0", "127.0.0.1")
        base = base.removesuffix("/v1/stream")
        yield LiveServer(base, lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)


def self_signed_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A certificate and key for 127.0.0.1/localhost made with ``openssl``; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# -- captions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedCue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


def _time_pattern(sep: str) -> str:
    return r"(\d{2,}):([0-5]\d):([0-5]\d)" + re.escape(sep) + r"(\d{3})"


def _timing(line: str, sep: str) -> tuple[int, int]:
    time_re = _time_pattern(sep)
    match = re.fullmatch(f"{time_re} --> {time_re}", line)
    if match is None:
        raise ValueError(f"bad timing line {line!r}")
    g = [int(x) for x in match.groups()]
    start = ((g[0] * 60 + g[1]) * 60 + g[2]) * 1000 + g[3]
    end = ((g[4] * 60 + g[5]) * 60 + g[6]) * 1000 + g[7]
    return start, end


def _check_cue_order(cues: list[ParsedCue]) -> None:
    previous_end = 0
    for cue in cues:
        if not cue.start_ms < cue.end_ms:
            raise ValueError(f"cue ends before it starts: {cue}")
        if cue.start_ms < previous_end:
            raise ValueError(f"cue overlaps the previous one: {cue}")
        previous_end = cue.end_ms
        if not cue.lines or any(not line.strip() or "-->" in line for line in cue.lines):
            raise ValueError(f"bad cue text: {cue}")


def parse_srt(text: str) -> list[ParsedCue]:
    """Strict SubRip: blocks ``N / HH:MM:SS,mmm --> HH:MM:SS,mmm / text...`` numbered from 1,
    one blank line after each block, LF line ends, ordered non-overlapping cues."""
    if not text:
        return []
    if "\r" in text or not text.endswith("\n\n") or text.endswith("\n\n\n"):
        raise ValueError("SRT must use LF line ends and end each block with one blank line")
    cues = []
    for number, block in enumerate(text[:-2].split("\n\n"), start=1):
        lines = block.split("\n")
        if len(lines) < 3:
            raise ValueError(f"block {number} is too short: {block!r}")
        if lines[0] != str(number):
            raise ValueError(f"block {number} is numbered {lines[0]!r}")
        start, end = _timing(lines[1], ",")
        cues.append(ParsedCue(start, end, tuple(lines[2:])))
    _check_cue_order(cues)
    return cues


_VTT_MARKUP = re.compile(r"<|&(?!(?:amp|lt|gt|nbsp|lrm|rlm);)")


def parse_vtt(text: str) -> list[ParsedCue]:
    """Strict WebVTT as we write it: ``WEBVTT``, a blank line, then cues of a timing line
    (``HH:MM:SS.mmm --> HH:MM:SS.mmm``) and text lines, one blank line after each cue."""
    if "\r" in text or not text.startswith("WEBVTT\n\n"):
        raise ValueError("WebVTT must start with 'WEBVTT' and a blank line, LF line ends")
    body = text[len("WEBVTT\n\n") :]
    if not body:
        return []
    if not body.endswith("\n\n") or body.endswith("\n\n\n"):
        raise ValueError("each cue must end with one blank line")
    cues = []
    for block in body[:-2].split("\n\n"):
        lines = block.split("\n")
        start, end = _timing(lines[0], ".")
        if any(_VTT_MARKUP.search(line) for line in lines[1:]):
            raise ValueError(f"unescaped markup in {block!r}")
        cues.append(ParsedCue(start, end, tuple(lines[1:])))
    _check_cue_order(cues)
    return cues


# -- audio ------------------------------------------------------------------------------------

Audio = NDArray[np.float32]


def read_mono(path: Path) -> tuple[Audio, int]:
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.asarray(samples.mean(axis=1), dtype=np.float32), int(rate)


def padded_wav(
    source: Path, target: Path, *, rate: int, before_s: float, after_s: float, channels: int = 1
) -> Path:
    """``source`` resampled to ``rate`` with silence around it, written as 16-bit WAV."""
    samples, source_rate = read_mono(source)
    if source_rate != rate:
        samples = np.asarray(soxr.resample(samples, source_rate, rate), dtype=np.float32)
    silence = [np.zeros(round(rate * s), dtype=np.float32) for s in (before_s, after_s)]
    audio = np.concatenate([silence[0], samples, silence[1]])
    if channels == 2:
        audio = np.stack([audio, audio * 0.5], axis=1)
    soundfile.write(str(target), audio, rate, subtype="PCM_16")
    return target
