"""Client test helpers: a test certificate, strict SRT/WebVTT parsers, padded recordings.

The server the client tests talk to is :class:`.service_util.ServerThread`."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from .service_util import read_mono, resample

# -- TLS --------------------------------------------------------------------------------------


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


# -- audio -----------------------------------------------------------------------------------


def padded_wav(
    source: Path, target: Path, *, rate: int, before_s: float, after_s: float, channels: int = 1
) -> Path:
    """``source`` (mono) resampled to ``rate`` with silence around it, written as 16-bit WAV."""
    samples, source_rate = read_mono(source)
    samples = resample(samples, source_rate, rate)
    silence = [np.zeros(round(rate * s), dtype=np.float32) for s in (before_s, after_s)]
    audio = np.concatenate([silence[0], samples, silence[1]])
    if channels == 2:
        audio = np.stack([audio, audio * 0.5], axis=1)
    soundfile.write(str(target), audio, rate, subtype="PCM_16")
    return target
