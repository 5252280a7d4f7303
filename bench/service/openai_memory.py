"""Server memory while it transcribes one long upload through the OpenAI-compatible API.

    python -m bench openai_memory [--model FOLDER] [--minutes 60] [--format flac]

Synthesises a ``--minutes`` recording by concatenating the fixture utterances (written block by
block, never held whole), starts ``asr-server`` in a subprocess, warms it up with one short
request, then posts the long file with the ``openai`` SDK (``response_format=text``) while a
thread samples the server's resident memory (psutil). Prints the RSS before, the peak during the
job and the growth (target: under 100 MB: the upload is spooled to a temporary file and decoded
one second at a time, so neither the file nor its samples are ever one array in memory).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile
from openai import OpenAI

from bench.common.fixtures import (
    DEFAULT_OUT,
    DEFAULT_SHARED,
    ExportFolder,
    dev_set,
    export_fixture,
    write_figures,
)
from bench.common.server_process import ServerProcess

log = logging.getLogger(__name__)

RATE = 16000
TARGET_MB = 100.0


def synthesise(shared: Path, minutes: float, path: Path, fmt: str) -> float:
    """Concatenate the fixture utterances (0.3 s apart) into ``path``; its seconds."""
    utterances = [p for p, _ in dev_set(shared / "speech" / "dev" / "tts")]
    gap = np.zeros(int(0.3 * RATE), dtype=np.float32)
    total, wanted = 0, int(minutes * 60 * RATE)
    with soundfile.SoundFile(str(path), "w", RATE, 1, format=fmt.upper()) as out:
        while total < wanted:
            for utterance in utterances:
                samples, rate = soundfile.read(str(utterance), dtype="float32")
                if rate != RATE:
                    raise ValueError(f"{utterance} is {rate} Hz, expected {RATE}")
                piece = np.concatenate([samples, gap])[: wanted - total]
                out.write(piece)
                total += piece.shape[0]
                if total >= wanted:
                    break
    return total / RATE


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``period_s`` until stopped; keeps the peak."""

    def __init__(self, pid: int, period_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.period_s = period_s
        self.peak = self.process.memory_info().rss
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.period_s):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def measure(model: Path, audio: Path, seconds: float, work: Path) -> dict[str, Any]:
    args = ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--device", "cpu"]
    args += ["--threads", "1", "--max-upload-bytes", str(1 << 30)]
    with ServerProcess(args, work / "server.log") as server:
        base = server.url.replace("ws://", "http://", 1) + "/v1"
        client = OpenAI(base_url=base, api_key="none", max_retries=0, timeout=3600)
        warm = audio.with_suffix(".warm.wav")
        soundfile.write(str(warm), np.zeros(RATE, dtype=np.float32), RATE)
        with warm.open("rb") as f:
            client.audio.transcriptions.create(model="whisper-1", file=f)
        before = psutil.Process(server.pid).memory_info().rss
        sampler = RssSampler(server.pid)
        sampler.start()
        started = time.monotonic()
        with audio.open("rb") as f:
            text = client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format="text"
            )
        wall = time.monotonic() - started
        peak = sampler.stop()
    mb = 1 << 20
    return {
        "audio_minutes": round(seconds / 60, 2),
        "upload_mb": round(audio.stat().st_size / mb, 1),
        "wall_s": round(wall, 1),
        "times_real_time": round(seconds / wall, 1),
        "transcript_chars": len(text),
        "rss_before_mb": round(before / mb, 1),
        "rss_peak_mb": round(peak / mb, 1),
        "rss_growth_mb": round((peak - before) / mb, 1),
        "target_growth_mb": TARGET_MB,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action=ExportFolder, default=None, help="an asr-export folder")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--format", choices=["flac", "wav", "ogg"], default="flac")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.out / "openai_memory"
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or export_fixture(args.shared, args.out / "work", ("fp32",))
    with tempfile.TemporaryDirectory(dir=work) as folder:
        audio = Path(folder) / f"long.{args.format}"
        seconds = synthesise(args.shared, args.minutes, audio, args.format)
        figures = measure(model, audio, seconds, work)
    for name, value in figures.items():
        print(f"{name:>20}: {value}")
    verdict = "within" if figures["rss_growth_mb"] < TARGET_MB else "OVER"
    print(f"RSS growth {figures['rss_growth_mb']} MB: {verdict} the {TARGET_MB:g} MB target")
    write_figures(args.out, "openai_memory.json", figures)


if __name__ == "__main__":
    main()
