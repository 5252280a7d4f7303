"""Streams held through a local Triton server on CPU against the local backend, same cores.

    python -m bench triton_bench [--quick] [--model wav2vec2-base-960h] [--seconds S]
                                 [--setups local:int8 local:int8:lm triton:int8:w2 ...]
                                 [--levels N ...]
                                 [--shared ../shared] [--work DIR] [--out DIR]

Issue 10, item 6: the price of the network hop. Every *setup* is a way to serve the same export
(random weights at base-960h size by default, ``bench.common.fixtures.export_random``):

* ``local:PRECISION[:wN]``: ``asr-server --model DIR --precision P [--workers N]``, onnxruntime in
  the frontend's own process (the embedded default);
* ``triton:PRECISION[:wN][:iN][:tN]``: ``asr-triton DIR --precision P [--instances N]
  [--threads N]`` (a real Triton 2.51 through pytriton, onnxruntime inside it; int8 unbatched
  with 2 instances, fp32 with Triton's dynamic batcher) and ``asr-server --inference
  triton://127.0.0.1:PORT --workers N`` (default 2) in front of it.

A ``:lm`` knob adds ``--lm LM`` to the server's command (issue 11: capacity with the LM beside
greedy): LM is the 4-gram ARPA file ``asr-lm text/ljspeech-train.txt --order 4 --model EXPORT``
builds (:func:`bench.stream.lm.lm_file`, once, under ``--work``), and the server's default LM
windows (0.64/2/0.64 s) apply, as users get them; each setup's clients start at phases spread
over its own hop.

The clients, the levels and the criterion are the service benchmark's
(:mod:`bench.service.capacity`): real-time protocol-v1 clients in this process sending 20 ms s16le
frames of the human dev speech, start phases spread over one hop; a level holds when the p95
partial latency is within 1.5 s and no stream failed; each setup climbs from shares of the raw
onnxruntime int8 ceiling and bisects, and the setups' levels are interleaved one by one
(:func:`bench.common.levels.interleaved`) so that the host's drift hits them alike. Every
setup's processes are up for the whole run (idle ones cost next to nothing). The CPU column is
the whole setup's (the frontends' process tree, and Triton's with its Python-backend stubs) as a
share of all cores.

Goal: a Triton setup holds at least 85 % of the streams the local backend holds with the same
precision. The Triton interpreter (``.venv-triton``, ``$ASR_TRITON_PYTHON``; see docs/triton.md)
is required: without it the benchmark says why and measures nothing.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..common import fixtures
from ..service import capacity as service_bench
from ..stream import lm as lm_bench
from .measure import measure
from .setup import DEFAULT_SETUPS, parse_setup
from .tables import markdown

log = logging.getLogger("bench.triton_bench")

DEFAULT_WORK = Path("/tmp/triton_bench")
FIXTURE = "fixture"
"""``--model fixture``: the trained fixture checkpoint (``tts-en-ctc-small``)."""
MOST = 120
"""Largest level of the sweep (the capacity section stops at 60: the fixture model goes past)."""


def export(shared: Path, work: Path, model: str, precisions: tuple[str, ...]) -> Path:
    """The trained fixture checkpoint (``fixture``) or a random-weight architecture, exported."""
    if model == FIXTURE:
        return fixtures.export_fixture(shared, work, precisions)
    return fixtures.export_random(shared, work, model, precisions)


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s streams, coarse levels")
    parser.add_argument(
        "--model", default="wav2vec2-base-960h", help=f"architecture (random), or {FIXTURE}"
    )
    parser.add_argument("--seconds", type=float, help="audio per client (default 20, quick 10)")
    parser.add_argument("--setups", nargs="+", type=parse_setup, help=f"default: {DEFAULT_SETUPS}")
    parser.add_argument("--levels", type=int, nargs="+", help="exactly these levels (no sweep)")
    parser.add_argument("--shared", type=Path, default=fixtures.DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=fixtures.DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("bench.service_bench").setLevel(logging.INFO)
    seconds = args.seconds or (10.0 if args.quick else 20.0)
    plan = (
        service_bench.CapacityPlan(seconds, first=(0.0, 0.6), step=0.2, refine=3, most=MOST)
        if args.quick
        else service_bench.CapacityPlan(seconds, most=MOST)
    )
    if args.levels:
        plan = service_bench.CapacityPlan(seconds, fixed=tuple(sorted(args.levels)))
    setups = args.setups or [parse_setup(s) for s in DEFAULT_SETUPS]
    precisions = tuple(sorted({"int8", *(s.precision for s in setups)}))
    folder = export(args.shared, args.work, args.model, precisions)
    lm = lm_bench.lm_file(args.shared, args.work, folder) if any(s.lm for s in setups) else None
    audio = service_bench.dev_audio(args.shared)
    figures = measure(folder, audio, plan, args.work, setups, lm=lm)
    figures["model"] = args.model
    print(f"\n### Through Triton on CPU vs local ({args.model})\n")
    print(markdown(figures))
    name = "triton_bench-quick.json" if args.quick else "triton_bench.json"
    fixtures.write_figures(args.out, name, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
