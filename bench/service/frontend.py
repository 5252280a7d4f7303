"""Frontend cost per stream with an instant model: everything the server does but inference.

    python -m bench frontend_bench [--quick] [--before LINK_TREE] [--workers 1 2]
                                   [--frames-ms 20 100] [--models local triton] [--seconds S]
                                   [--first N] [--most N] [--work DIR] [--out DIR]
    python -m bench frontend_bench serve ASR-SERVER-ARGS...   (the server side, see below)

The server is ``asr-server`` in its own process, with one change made from outside: before the
CLI runs, ``load_runner`` is wrapped where the engine calls it, so that the engine's runner (the
``Runner`` seam) is an :class:`InstantRunner`: the first window of each batch shape goes through
the real model (the fixture checkpoint exported fp32), every later one returns those logits at
once. So only the frontend works: websocket I/O, JSON, resampling, windowing, scheduling and CTC
decoding of real-looking logits. With ``--workers N`` every worker runs the same command line,
so the wrapper is installed in each.

The clients run in this process (asyncio, one websocket connection each, the service
benchmark's client) and send the human dev speech as 16 kHz s16le in frames of 20 ms (and
100 ms) paced in real time, from start phases spread over one hop. Binary frames are written to
the socket pre-built with a zero mask key (legal framing; the server still unmasks and parses
them), so that on a 2-core host the clients cost little beside the server they measure; their
own CPU and how late they sent are reported.

For every setup (code tree x frame size x workers) it reports, from one run with the setups'
levels interleaved:

* **CPU per audio second per stream**: the server's CPU seconds (``/proc``, user + system, the
  whole process tree: the parent and its workers) over the seconds of audio the level streamed,
  at the first level; its event loops' share (the main threads); and the real-time streams
  that one core of that cost would carry (1 / cost);
* **streams held**: the most concurrent streams at which the p95 partial latency stays within
  0.3 s of the window's completion (arrival of the ``partial`` minus the moment the last sample
  its window needed, its ``audio_end``, was due) with no stream failing.

Beside the instant model, ``--models`` runs the real configurations at the first frame size with
one worker, the fixture exported int8 (default: both): ``local``, the model in the server's own
process (its CPU includes the model's), and ``triton``, ``asr-server --inference triton://...``
in front of one local ``asr-triton`` (the server process's CPU: the frontend and its gRPC
client; a missing Triton interpreter is reported, not skipped silently). ``--models`` with no
value runs the instant model alone.

``--before`` names a link tree (``streamasr/{server,export,client}`` links into another
checkout, as ``.ci/typecheck`` builds) whose server runs the same levels beside this checkout's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..common import fixtures
from ..common.fixtures import DEFAULT_OUT, DEFAULT_SHARED, write_figures
from ..common.proc import cores
from . import capacity as service_bench
from .frontend_server import REAL_PRECISION, serve_main
from .frontend_sweep import PLANS, REAL, FrontendPlan, measure
from .frontend_tables import levels_table, summary_lines, table

log = logging.getLogger("bench.frontend_bench")

DEFAULT_WORK = Path("/tmp/frontend_bench")


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["serve"]:
        return serve_main(args_in[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 s streams, coarser levels")
    parser.add_argument("--before", type=Path, help="link tree of the code to compare with")
    parser.add_argument("--only-before", action="store_true", help="skip this checkout")
    parser.add_argument("--frames-ms", type=int, nargs="+")
    parser.add_argument("--workers", type=int, nargs="+")
    parser.add_argument("--models", nargs="*", choices=REAL, help="default: %(choices)s")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--first", type=int, help="the first level (where the cost is read)")
    parser.add_argument("--most", type=int, help="the largest level (--most FIRST: one level)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(args_in)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    plan = PLANS["quick" if args.quick else "full"]
    overrides = {
        "frames_ms": tuple(args.frames_ms) if args.frames_ms else plan.frames_ms,
        "workers": tuple(args.workers) if args.workers else plan.workers,
        "models": plan.models if args.models is None else tuple(args.models),
        "seconds": args.seconds or plan.seconds,
        "first": args.first or plan.first,
        "most": args.most or plan.most,
    }
    plan = FrontendPlan(**{**asdict(plan), **overrides})
    folder = fixtures.export_fixture(args.shared, args.work, ("fp32", REAL_PRECISION))
    audio = service_bench.dev_audio(args.shared)
    figures = measure(folder, audio, plan, args.work, args.before, after=not args.only_before)
    print(f"\n### Frontend cost: instant model and real configurations ({cores()} cores)\n")
    print(table(figures))
    print("\n" + "\n".join(summary_lines(figures)) + "\n")
    print(levels_table(figures))
    name = "frontend_bench-quick.json" if args.quick else "frontend_bench.json"
    write_figures(args.out, name, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
