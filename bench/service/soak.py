"""Soak: many short real v1 sessions against one server; memory and descriptors must not creep.

    python -m bench soak_bench [--model FOLDER] [--sessions 10000] [--concurrency 4]
                               [--audio-s 0.3]

Starts ``asr-server`` (the fixture checkpoint exported once, or ``--model``) and runs
``--sessions`` complete protocol v1 sessions (start, ``--audio-s`` of a dev-set utterance in
100 ms frames, stop, read to the close), ``--concurrency`` at a time. Prints the server's
resident memory (VmRSS, /proc) at 0, 1k, 5k and the last session, its open file descriptors
before and after, and whether RSS grew less than 10 MiB from 1k sessions to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.client import connect

from streamasr.server.engine.offline import read_audio
from streamasr.server.protocol import messages

from ..common.fixtures import DEFAULT_SHARED, ExportFolder, export_fixture
from ..common.proc import open_fds, read_usage
from ..common.server_process import ServerProcess

CHECKPOINTS = (0, 1000, 5000)
GROWTH_BOUND_MIB = 10.0
RATE = 16000


def speech(shared: Path, seconds: float) -> bytes:
    """``seconds`` of a dev-set utterance as 16 kHz s16le."""
    samples, rate = read_audio(shared / "speech" / "dev" / "tts" / "tts-022.flac")
    mono: NDArray[np.float32] = samples.mean(axis=1) if samples.ndim > 1 else samples
    if rate != RATE:
        import soxr

        mono = np.asarray(soxr.resample(mono, rate, RATE), dtype=np.float32)
    pcm = np.clip(np.round(mono * 32768.0), -32768, 32767).astype("<i2")
    return pcm[: int(seconds * RATE)].tobytes()


async def one_session(url: str, pcm: bytes) -> str:
    """A whole v1 session; the close code and the type of the last message."""
    last = ""
    async with connect(url, compression=None, open_timeout=30) as ws:
        await ws.send(messages.encode(messages.Start(RATE, "s16le").to_dict()))
        step = RATE // 10 * 2
        for offset in range(0, len(pcm), step):
            await ws.send(pcm[offset : offset + step])
        await ws.send(messages.encode(messages.STOP))
        async for message in ws:
            if isinstance(message, str):
                data = json.loads(message)
                messages.server_message(data)  # a malformed server message fails the soak
                last = data["type"]
    return f"{ws.close_code} {last}"


async def soak(url: str, pcm: bytes, sessions: int, concurrency: int, pid: int) -> dict[str, int]:
    """Run the sessions; print RSS at each checkpoint; count the outcomes."""
    outcomes: dict[str, int] = {}
    checkpoints = sorted({*(c for c in CHECKPOINTS if c < sessions), sessions})
    done = 0
    began = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(sessions):
        queue.put_nowait(index)

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            queue.get_nowait()
            try:
                outcome = await one_session(url, pcm)
            except Exception as exc:  # a failed session is a figure, not a crash
                outcome = type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            done += 1
            if done in checkpoints:
                report(done, pid, time.monotonic() - began)

    report(0, pid, 0.0)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


RSS: dict[int, float] = {}


def report(done: int, pid: int, elapsed_s: float) -> None:
    usage = read_usage(pid)
    rss = usage.rss_mib if usage else float("nan")
    RSS[done] = rss
    print(f"  {done:6d} sessions  RSS {rss:7.1f} MiB  fds {open_fds(pid)}  ({elapsed_s:.0f} s)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action=ExportFolder, help="an asr-export folder (default: the fixture)"
    )
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--audio-s", type=float, default=0.3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pcm = speech(args.shared, args.audio_s)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_fixture(args.shared, Path(tmp), ("int8",))
        server_args = ["--model", str(model), "--port", "0", "--device", "cpu"]
        with ServerProcess(server_args, Path(tmp) / "server.log") as server:
            print(
                f"asr-server pid {server.pid}: {args.sessions} sessions of {args.audio_s:g} s, "
                f"{args.concurrency} at a time"
            )
            fds_before = open_fds(server.pid)
            outcomes = asyncio.run(
                soak(f"{server.url}/v1/stream", pcm, args.sessions, args.concurrency, server.pid)
            )
            fds_after = open_fds(server.pid)
    print(f"outcomes (close code, last message): {outcomes}")
    print(f"open file descriptors: before {fds_before}, after {fds_after}")
    start = RSS.get(1000, RSS[0])
    growth = RSS[args.sessions] - start
    mark = "1k" if 1000 in RSS else "0"
    verdict = "PASS" if growth < GROWTH_BOUND_MIB else "FAIL"
    print(
        f"RSS growth {mark} -> {args.sessions}: {growth:+.1f} MiB "
        f"(bound {GROWTH_BOUND_MIB:g} MiB): {verdict}"
    )


if __name__ == "__main__":
    main()
