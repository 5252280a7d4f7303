"""The benchmark report's modes (full, quick, smoke): how much of each section to run."""

from __future__ import annotations

from dataclasses import dataclass

from streamasr.server.options.stream import DEFAULT_HOP_S, DEFAULT_LEFT_S, DEFAULT_LOOKAHEAD_S

from ..common import fixtures
from ..punctuation.engine_cost import PunctuationPlan
from ..service import capacity as service_bench
from ..stream import grid as stream_grid

BASE = "wav2vec2-base-960h"
LARGE = "wav2vec2-large-960h-lv60-self"
DEFAULTS = (DEFAULT_HOP_S, DEFAULT_LEFT_S, DEFAULT_LOOKAHEAD_S)
"""(hop, left, lookahead) of ``StreamOptions``: marked on the latency/accuracy plot."""
SMOKE_GRID = (DEFAULTS, (0.64, 0.32, 0.16))
QUICK_GRID = (*stream_grid.QUICK_GRID, DEFAULTS)


@dataclass(frozen=True)
class Mode:
    """How much of each section to run."""

    name: str
    tts: int | None
    """tts utterances for fidelity and the grid (None: all 30)."""
    human: int | None
    """human utterances for the agreement figure (None: all 10)."""
    grid: tuple[tuple[float, float, float], ...]
    speed_configs: tuple[str, ...]
    speed_seconds: float
    speed_repeats: int
    profile: bool
    capacity_model: str
    capacity: service_bench.CapacityPlan
    punctuation: PunctuationPlan
    leaves_out: tuple[str, ...] = ()
    """What the report should say this mode skips."""


MODES = {
    "full": Mode(
        "full",
        tts=None,
        human=None,
        grid=tuple(stream_grid.grid_points("full")),
        speed_configs=(BASE, LARGE),
        speed_seconds=20.0,
        speed_repeats=3,
        profile=True,
        capacity_model=BASE,
        capacity=service_bench.CapacityPlan(20.0),
        punctuation=PunctuationPlan(repeats=5, base_utterances=None),
    ),
    "quick": Mode(
        "quick",
        tts=None,
        human=None,
        grid=QUICK_GRID,
        speed_configs=(BASE,),
        speed_seconds=10.0,
        speed_repeats=2,
        profile=False,
        capacity_model=BASE,
        capacity=service_bench.CapacityPlan(
            6.0, first=(0.0, 0.6), step=0.2, refine=3, ceiling_s=2.0
        ),
        punctuation=PunctuationPlan(repeats=3, base_utterances=10),
        leaves_out=(
            f"the grid's {len(QUICK_GRID)} points instead of "
            f"{len(stream_grid.grid_points('full'))}",
            "offline speed at base-960h size only (no large-lv60), 10 s of audio, 2 timed runs, "
            "no profile",
            "capacity with 6 s streams (20 s in full), levels 20 % of the ceiling apart "
            "refined by 3 bisection steps (8 in full), so the streams held are known to about "
            "2 streams",
            "punctuation: 3 interleaved pairs of passes (5 in full), the base-size yardstick on "
            "10 utterances per repeat (all 30 in full)",
        ),
    ),
    "smoke": Mode(
        "smoke",
        tts=3,
        human=2,
        grid=SMOKE_GRID,
        speed_configs=(fixtures.TINY,),
        speed_seconds=4.0,
        speed_repeats=1,
        profile=False,
        capacity_model=fixtures.TINY,
        capacity=service_bench.CapacityPlan(3.0, fixed=(1, 2), ceiling_s=0.5),
        punctuation=PunctuationPlan(segments=40, repeats=1, base_model=fixtures.TINY),
        leaves_out=(
            "SMOKE TEST: a tiny random model for speed and capacity, 3 tts and 2 human "
            "utterances, 2 grid points, 2 stream levels of 3 s, 40 held-out punctuation "
            "segments and one pair of punctuation passes against the tiny model: the figures "
            "check the machinery, they measure nothing",
        ),
    ),
}
