"""Timed stream runs and the latency definitions used by ``bench.stream.bench``.

Audio is played as a client would, in 20 ms frames: frame ``k`` (samples ``[320 k, 320 (k+1))``)
arrives ``320 (k+1) / 16000`` s after the stream started. An event is *emitted* when the feed
call that returned it completes; in the single-stream runs that time is computed as the arrival
of the frame plus the measured duration of its feed call (queueing, inference and decoding
included), in the multi-stream runs it is read from the clock of a real-time simulation.

Latencies, in seconds:

* **word latency** (``shown``): for every word of every final segment, from the end of the word's
  audio (``Word.end``) to the emission of the first partial of its segment whose hypothesis
  (committed + provisional) holds that word, spelled as in the final, at the same position in
  the segment; the final itself when no partial showed it.
* **frame latency** (``covered``): for every 20 ms output frame ``f``, from the end of the audio it
  sees (sample ``320 f + 400``) to the emission of the first window whose output includes it
  (kept or lookahead). It does not depend on what the model writes, so it also serves for
  random-weight models; a word whose spelling is stable has word latency = frame latency of its
  last frame.
* **partial latency** (``partial``): for every partial, from the moment the last sample of the
  audio its window needed (``Partial.audio_end``: hop + lookahead + the 80-sample overhang) was
  due from the client to the partial's emission: queueing, inference and decoding, plus the wait
  for whatever finishes the frame that carries that sample. The figure the capacity runs hold to
  the budget, through the engine here and through the websocket server in
  ``bench.service.capacity`` (there: arrival of the ``partial`` message at the client).
* **final latency** (``final``): for every final, from the moment the end of its segment's last
  frame (``Segment.end``) was due to its emission; endpointed segments include the endpoint wait
  (``endpoint_ms`` of non-speech and the window that sees it), segments closed at the end of the
  stream the time from the last sample to the final.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.engine.engine import Engine
from streamasr.server.engine.offline import frames
from streamasr.server.engine.stream import StreamStats
from streamasr.server.events import Event, Final, Lagging, Partial
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions

RATE = SAMPLE_RATE
FRAME = 320
"""Client frame: 20 ms."""


@dataclass
class TimedRun:
    """What one stream emitted and when (seconds from the stream's start)."""

    samples: int
    events: list[tuple[float, Event]] = field(default_factory=list)
    feeds: list[tuple[int, float]] = field(default_factory=list)
    """(samples delivered once the call returned, completion time) of every feed and of finish."""
    model_samples: int = 0
    skipped: int = 0
    windows: int = 0

    @property
    def finals(self) -> list[Final]:
        return [e for _, e in self.events if isinstance(e, Final)]

    @property
    def text(self) -> str:
        return " ".join(f.segment.text for f in self.finals)

    @property
    def lagging(self) -> int:
        return sum(isinstance(e, Lagging) for _, e in self.events)


def run_timed(engine: Engine, samples: NDArray[np.float32], options: StreamOptions) -> TimedRun:
    """One stream, audio in 20 ms frames, emission = frame arrival + feed duration."""
    stream = engine.stream(AudioFormat("f32le"), options)
    run = TimedRun(samples.size)
    delivered = 0
    for piece in frames(samples, [FRAME]):
        started = time.perf_counter()
        events = stream.feed(piece)
        delivered += piece.size
        done = delivered / RATE + time.perf_counter() - started
        run.feeds.append((delivered, done))
        run.events += [(done, e) for e in events]
    started = time.perf_counter()
    events = stream.finish()
    done = samples.size / RATE + time.perf_counter() - started
    run.feeds.append((samples.size + 1, done))
    run.events += [(done, e) for e in events]
    _stats(run, stream.stats)
    return run


def _stats(run: TimedRun, stats: StreamStats) -> None:
    run.model_samples = stats.model_samples
    run.skipped = stats.skipped
    run.windows = stats.windows


async def play_real_time(
    engine: Engine,
    samples: NDArray[np.float32],
    options: StreamOptions,
    start_at: float,
) -> TimedRun:
    """One stream fed in real time from ``start_at`` (event-loop clock), 20 ms frames."""
    loop = asyncio.get_running_loop()
    stream = engine.stream(AudioFormat("f32le"), options)
    run = TimedRun(samples.size)
    delivered = 0
    for piece in frames(samples, [FRAME]):
        due = start_at + (delivered + piece.size) / RATE
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the client's recording pace, not a server-side poll
        events = await stream.feed_async(piece)
        delivered += piece.size
        done = loop.time() - start_at
        run.feeds.append((delivered, done))
        run.events += [(done, e) for e in events]
    events = await stream.finish_async()
    done = loop.time() - start_at
    run.feeds.append((samples.size + 1, done))
    run.events += [(done, e) for e in events]
    _stats(run, stream.stats)
    return run


def word_latencies(run: TimedRun) -> list[float]:
    """``shown`` latency of every word of every final (see the module docstring)."""
    latencies: list[float] = []
    partials: dict[int, list[tuple[float, list[str]]]] = {}
    for emitted, event in run.events:
        if isinstance(event, Partial):
            words = event.hypothesis.text.split()
            partials.setdefault(event.segment, []).append((emitted, words))
    for emitted, event in run.events:
        if not isinstance(event, Final):
            continue
        seen = partials.get(event.segment.index, [])
        for i, word in enumerate(event.segment.words):
            shown = next((t for t, ws in seen if i < len(ws) and ws[i] == word.text), emitted)
            latencies.append(min(shown, emitted) - word.end)
    return latencies


def frame_latencies(run: TimedRun, options: StreamOptions, frames_total: int) -> list[float]:
    """``covered`` latency of every output frame (see the module docstring)."""
    hop = round(options.hop_s * RATE)
    lookahead = round(options.lookahead_s * RATE)
    overhang = 80
    delivered = [d for d, _ in run.feeds]
    latencies = []
    for f in range(frames_total):
        audio_end = FRAME * f + 400
        k = max(0, math.ceil((audio_end - overhang - lookahead) / hop) - 1)
        window_end = (k + 1) * hop + lookahead + overhang
        if window_end > run.samples:
            window_end = run.samples + 1  # decoded by the final window, at finish
        i = bisect.bisect_left(delivered, window_end)
        latencies.append(run.feeds[i][1] - audio_end / RATE)
    return latencies


def partial_latencies(run: TimedRun) -> list[float]:
    """``partial`` latency of every partial: its emission minus the moment the last sample of
    the audio its window needed (``Partial.audio_end``) was due from the client."""
    return [t - e.audio_end for t, e in run.events if isinstance(e, Partial)]


def final_latencies(run: TimedRun) -> list[float]:
    """``final`` latency of every final: its emission minus the moment the end of the segment's
    last frame (``Segment.end``) was due; endpointed segments include the endpoint wait."""
    return [t - e.segment.end for t, e in run.events if isinstance(e, Final)]


def start_offsets(n: int, hop_s: float) -> NDArray[np.float64]:
    """Seeded start phases of ``n`` concurrent streams within one hop (capacity runs)."""
    return np.random.default_rng(n).uniform(0, hop_s, size=n)
