"""The frontend's CPU per audio second through one local Triton, by code tree and precision.

    python -m bench triton_hop [--tree LABEL=LINK_TREE[:SERVER-ARG...] ...]
                               [--precisions int8 fp32] [--levels 30 80] [--repeats 2]
                               [--seconds 12] [--frame-ms 20] [--shared ../shared]
                               [--work /tmp/triton_hop] [--out DIR]

Issue 20, item 1: the price of the Triton hop in the frontend. One ``asr-triton`` serves the
fixture checkpoint (``tts-en-ctc-small``, exported fp32 and int8) for every setup; a setup is a
code tree x precision, whose ``asr-server --inference triton://... --precision P`` (one worker)
runs the whole time. A tree is a link tree (``streamasr/{server,export,client}``, as
``.ci/typecheck`` builds) put first on the server's ``PYTHONPATH``; ``this`` is the checkout the
benchmark runs from. Words after the tree's path (``:``-separated) are added to its server's
command line (``--tree shm=/tmp/tree:--triton-shm``).

The clients are the frontend benchmark's (:mod:`bench.frontend_client`: real-time paced 20 ms
s16le frames of the human dev speech, pre-built, staggered over one hop) and so is the level
(:func:`bench.frontend_sweep.frontend_level`): the **server process tree's CPU** (``/proc``, user
+ system, all threads) from the moment every client is connected until the last one closed,
over the seconds of audio streamed. Levels are interleaved (repeat x level x setup) so that the
shared host's drift hits every setup alike; the table gives the median and the spread.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import fixtures
from bench.common.fixtures import DEFAULT_OUT, DEFAULT_SHARED, write_figures
from bench.common.server_process import ServerProcess
from bench.service import capacity as service_bench
from bench.service.frontend_sweep import frontend_level
from bench.stream import capacity as stream_capacity
from bench.triton.process import serving, triton_unavailable
from bench.triton.setup import MAX_CONNECTIONS

log = logging.getLogger("bench.triton_hop")

DEFAULT_WORK = Path("/tmp/triton_hop")
THIS = "this"


@dataclass(frozen=True)
class Tree:
    """A code tree to run the server from, and extra server arguments."""

    label: str
    links: Path | None
    """None: this checkout."""
    args: tuple[str, ...] = ()


def parse_tree(text: str) -> Tree:
    """``LABEL=LINK_TREE[:ARG...]`` or ``this[:ARG...]``."""
    label, sep, rest = text.partition("=")
    if not sep:
        head, *args = text.split(":")
        if head != THIS:
            raise argparse.ArgumentTypeError(f"{text!r}: LABEL=LINK_TREE[:ARG...] or this")
        return Tree(THIS if not args else f"{THIS} {' '.join(args)}", None, tuple(args))
    path, *args = rest.split(":")
    if not (Path(path) / "streamasr" / "server").is_dir():
        raise argparse.ArgumentTypeError(f"{path}: no streamasr/server in it")
    return Tree(label, Path(path), tuple(args))


@dataclass
class Running:
    tree: Tree
    precision: str
    server: ServerProcess
    hop_s: float

    @property
    def label(self) -> str:
        return f"{self.tree.label} {self.precision}"


@contextmanager
def start(
    folder: Path, trees: Sequence[Tree], precisions: Sequence[str], work: Path
) -> Iterator[list[Running]]:
    """One ``asr-triton`` with every precision, and one server per tree x precision."""
    with ExitStack() as stack:
        triton = stack.enter_context(serving(folder, precisions, work / "triton.log"))
        runs = []
        for tree in trees:
            for precision in precisions:
                args = service_bench.server_args(folder, precision)
                args += ["--max-connections", str(MAX_CONNECTIONS), "--inference", triton.url]
                args += list(tree.args)
                slug = f"{tree.label}-{precision}".replace(" ", "_").replace("/", "_")
                server = ServerProcess(args, work / f"server-{slug}.log")
                if tree.links is not None:
                    path = os.pathsep.join([str(tree.links), os.environ.get("PYTHONPATH", "")])
                    server.command = ["env", f"PYTHONPATH={path}", *server.command]
                stack.enter_context(server)
                hop_s = service_bench.engine_settings(args)[1].hop_s
                runs.append(Running(tree, precision, server, hop_s))
        yield runs


def measure(  # noqa: PLR0917
    runs: Sequence[Running],
    audio: Any,
    levels: Sequence[int],
    repeats: int,
    seconds: float,
    frame_ms: int,
) -> dict[str, Any]:
    """Every level of every setup ``repeats`` times, interleaved."""
    out: dict[str, Any] = {run.label: {str(n): [] for n in levels} for run in runs}
    for repeat in range(repeats):
        for n in levels:
            pieces = stream_capacity.client_pieces(audio, n, seconds)
            for run in runs:
                figures = frontend_level(run.server, pieces, run.hop_s, frame_ms)
                out[run.label][str(n)].append(figures)
                log.info(
                    "repeat %d, %d streams, %s: %.2f ms CPU per audio s, p95 partial %.3f s, "
                    "%d failed",
                    repeat + 1,
                    n,
                    run.label,
                    figures["cpu_per_audio_s"] * 1000,
                    figures["partial"]["p95"],
                    figures["failed_streams"],
                )
    return out


def markdown(levels: dict[str, Any]) -> str:
    lines = [
        "| setup | streams | ms CPU per audio s per stream (median; all) | streams per core "
        "| p95 partial (s) | failed |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for label, by_level in levels.items():
        for n, figures in by_level.items():
            costs = [f["cpu_per_audio_s"] * 1000 for f in figures]
            median = statistics.median(costs)
            p95 = max(f["partial"]["p95"] for f in figures)
            failed = sum(f["failed_streams"] for f in figures)
            every = ", ".join(f"{c:.2f}" for c in costs)
            lines.append(
                f"| {label} | {n} | **{median:.2f}**; {every} | {1000 / median:.0f} "
                f"| {p95:.3f} | {failed} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=parse_tree, action="append", help="default: this")
    parser.add_argument("--precisions", nargs="+", default=["int8", "fp32"])
    parser.add_argument("--levels", type=int, nargs="+", default=[30])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--frame-ms", type=int, default=20)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    unavailable = triton_unavailable()
    if unavailable is not None:
        print(f"no Triton interpreter: {unavailable}", file=sys.stderr)
        return 2
    trees = args.tree or [parse_tree(THIS)]
    args.work.mkdir(parents=True, exist_ok=True)
    folder = fixtures.export_fixture(args.shared, args.work, ("fp32", "int8"))
    audio = service_bench.dev_audio(args.shared)
    with start(folder, trees, args.precisions, args.work) as runs:
        levels = measure(runs, audio, args.levels, args.repeats, args.seconds, args.frame_ms)
    print(f"\n### Frontend CPU through Triton ({args.frame_ms} ms frames, fixture model)\n")
    print(markdown(levels))
    write_figures(args.out, "triton_hop.json", {"levels": levels, "argv": sys.argv})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
