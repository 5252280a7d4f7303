"""What captions cost in the streaming engine: CPU per audio second and latency added to finals.

One engine (the fixture acoustic model, int8, one intra-op thread, no batching wait) loaded with
the punctuation model streams the tts utterances in 20 ms frames through ``Engine.stream()``
(the blocking API, one stream at a time) at the server's defaults, with ``punctuate`` off and
on, in interleaved passes (the order alternates per repeat). Per pass:

* **process CPU** (``getrusage``: every thread, the batcher's included): the added CPU per audio
  second is the with-pass's minus the without-pass's, summed over the repeats;
* **caption CPU**, measured where the work runs: the thread CPU of the stream's captioning step
  (:class:`TimedCaptioner`, in the feeding thread; waiting on the batcher costs none) plus the
  CPU of the batcher thread (``asr-punctuation``, psutil) over the pass: the added CPU without
  the noise of everything else;
* **final latency**: the wall time of the captioning step that carried each ``Final`` (the
  whole step: the segment's last model call and any partial captioned with it), and, as a
  cross-check, each final's emission time with punctuation minus the same final's without
  (same utterance, repeat and segment; inference jitter included).

The yardstick is the acoustic model at base size: random-weight ``wav2vec2-base-960h`` exported
int8, streamed the same way (``bench.stream.lm.run_pass``: process CPU per audio second) in the
same run, after each repeat's pair of passes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamasr.export import punctuation as punctuation_export
from streamasr.server.decoding.punctuation.manifest import MANIFEST_FILE
from streamasr.server.decoding.punctuation.stable import Labeller
from streamasr.server.engine.captions import Captioner
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.stream import Stream
from streamasr.server.events import Event, Final
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.inference.scheduler import SchedulerConfig
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions

from ..common import fixtures
from ..common.percentiles import percentiles
from ..common.proc import own_cpu_s, thread_cpu_s
from ..stream import lm as lm_bench
from ..stream.sim import FRAME, RATE

log = logging.getLogger(__name__)

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "data" / "punctuation-fixture"
"""The fixture punctuation checkpoint trained for the tests (``bench.punctuation.train``)."""
BATCHER_THREAD = "asr-punctuation"
ACCEPT_CPU_RATIO = 0.10
"""Added CPU per audio second at most this share of the base-size acoustic model's."""
ACCEPT_FINAL_P95_S = 0.050
"""Added latency of a final at p95 at most this."""


@dataclass(frozen=True)
class PunctuationPlan:
    """How much of the punctuation section a report mode runs."""

    segments: int | None = None
    """Held-out segments scored (None: all)."""
    repeats: int = 3
    """Interleaved pairs of passes (without, with punctuation) over the utterances."""
    base_model: str = "wav2vec2-base-960h"
    """The acoustic model the added CPU is compared with (``models/configs`` stem or tiny)."""
    base_utterances: int | None = 10
    """Utterances of each repeat's base-model pass (None: all)."""


def export_punctuation(work: Path, checkpoint: Path = FIXTURE) -> Path:
    """The fixture punctuation checkpoint exported into ``work/punctuation`` (kept there)."""
    out = work / "punctuation" / checkpoint.name
    if not (out / MANIFEST_FILE).is_file():
        punctuation_export.run(punctuation_export.PunctuationExportConfig(str(checkpoint), out))
    return out


class TimedCaptioner(Captioner):
    """A stream's captioner that records the wall and thread CPU time of each captioning step,
    and the wall time of the steps that carried a ``Final``."""

    def __init__(self, labeller: Labeller) -> None:
        super().__init__(labeller)
        self.cpu_s = 0.0
        self.final_wall_s: list[float] = []

    @classmethod
    def install(cls, stream: Stream, labeller: Labeller) -> TimedCaptioner:
        """Put a timed captioner on the same labeller in place of the one the engine gave
        ``stream`` (a fresh stream: no state is lost); fails when the stream does not caption."""
        if not isinstance(stream._captioner, Captioner):
            raise RuntimeError("the stream does not caption")
        timed = cls(labeller)
        stream._captioner = timed
        return timed

    def apply(self, events: Sequence[Event]) -> list[Event]:
        wall, cpu = time.perf_counter(), time.thread_time()
        out = super().apply(events)
        self.cpu_s += time.thread_time() - cpu
        if any(isinstance(e, Final) for e in events):
            self.final_wall_s.append(time.perf_counter() - wall)
        return out


@dataclass
class Pass:
    """One pass over the utterances with or without punctuation."""

    cpu_s: float = 0.0
    caption_cpu_s: float = 0.0
    batcher_cpu_s: float = 0.0
    model_calls: int = 0
    """Batches the punctuation model ran (the batcher's count)."""
    words: int = 0
    caption_final_s: list[float] = field(default_factory=list)
    finals: dict[tuple[int, int], float] = field(default_factory=dict)
    """(utterance, segment index) -> emission time of its final from the stream's start."""


def batcher_cpu_s() -> float:
    """CPU seconds of the punctuation batcher's thread so far (0 when there is none)."""
    ids = {t.native_id for t in threading.enumerate() if t.name == BATCHER_THREAD}
    per_thread = thread_cpu_s(os.getpid()) if ids else {}
    return sum(per_thread.get(i, 0.0) for i in ids if i is not None)


def stream_pass(engine: Engine, utterances: Sequence[fixtures.Utterance], punctuate: bool) -> Pass:
    """Every utterance streamed in 20 ms frames at the server's defaults (``punctuate`` set);
    emission time of an event = arrival of its frame + the feed call's duration."""
    fmt = AudioFormat("f32le")
    options = StreamOptions.model_defaults(punctuate=punctuate)
    if punctuate and engine.punctuation is None:
        raise RuntimeError("the engine has no punctuation model")
    labeller = engine.punctuation.batcher.label if engine.punctuation else None
    result = Pass()
    batcher_before, before = batcher_cpu_s(), own_cpu_s()
    calls_before = engine.punctuation.batcher.calls if engine.punctuation else 0
    for u, (samples, _) in enumerate(utterances):
        stream = engine.stream(fmt, options)
        timer = TimedCaptioner.install(stream, labeller) if labeller and punctuate else None
        for i in range(0, samples.size, FRAME):
            started = time.perf_counter()
            events = stream.feed(samples[i : i + FRAME])
            done = min(i + FRAME, samples.size) / RATE + time.perf_counter() - started
            _record(result, u, events, done)
        started = time.perf_counter()
        events = stream.finish()
        _record(result, u, events, samples.size / RATE + time.perf_counter() - started)
        if timer is not None:
            result.caption_cpu_s += timer.cpu_s
            result.caption_final_s += timer.final_wall_s
    result.cpu_s = own_cpu_s() - before
    result.batcher_cpu_s = batcher_cpu_s() - batcher_before
    if engine.punctuation is not None:
        result.model_calls = engine.punctuation.batcher.calls - calls_before
    return result


def _record(result: Pass, utterance: int, events: Sequence[Event], done: float) -> None:
    for event in events:
        if isinstance(event, Final):
            result.finals[(utterance, event.segment.index)] = done
            result.words += len(event.segment.text.split())


def _runtime() -> RuntimeConfig:
    return RuntimeConfig(device="cpu", precision="int8", intra_op_threads=1)


def measure(
    shared: Path, work: Path, utterances: Sequence[fixtures.Utterance], plan: PunctuationPlan
) -> dict[str, Any]:
    """The engine figures (see the module docstring)."""
    fixture = fixtures.export_fixture(shared, work, ("fp32", "int8"))
    punctuation = export_punctuation(work)
    base = fixtures.export_random(shared, work, plan.base_model)
    base_utts = list(utterances[: plan.base_utterances])
    audio_s = sum(x.size for x, _ in utterances) / RATE
    passes: dict[bool, list[Pass]] = {False: [], True: []}
    base_passes: list[dict[str, Any]] = []
    scheduler = SchedulerConfig(max_wait_ms=0.0)
    config = EngineConfig(_runtime(), scheduler, punctuation=punctuation)
    with (
        Engine(fixture, config) as engine,
        Engine(base, EngineConfig(_runtime(), scheduler)) as base_engine,
    ):
        stream_pass(engine, utterances[:1], True)  # warm-up: sessions, caches, thread pools
        lm_bench.run_pass(base_engine, base_utts[:1], False)
        for r in range(plan.repeats):
            for punctuate in (False, True) if r % 2 == 0 else (True, False):
                log.info("punctuation cost: repeat %d, punctuate %s", r + 1, punctuate)
                passes[punctuate].append(stream_pass(engine, utterances, punctuate))
            log.info("punctuation cost: repeat %d, base model %s", r + 1, plan.base_model)
            base_passes.append(lm_bench.run_pass(base_engine, base_utts, False))
    return figures(
        passes,
        base_passes,
        audio_s=audio_s,
        plan=plan,
        utterances=len(utterances),
        base_utterances=len(base_utts),
    )


def figures(
    passes: dict[bool, list[Pass]],
    base_passes: list[dict[str, Any]],
    *,
    audio_s: float,
    plan: PunctuationPlan,
    utterances: int,
    base_utterances: int,
) -> dict[str, Any]:
    on, off = passes[True], passes[False]
    seconds = audio_s * len(on)
    words = sum(p.words for p in on)
    process_added = (sum(p.cpu_s for p in on) - sum(p.cpu_s for p in off)) / seconds
    caption = sum(p.caption_cpu_s + p.batcher_cpu_s for p in on) / seconds
    base_cpu = float(np.median([b["cpu_per_audio_s"] for b in base_passes]))
    paired = [
        p_on.finals[key] - p_off.finals[key]
        for p_on, p_off in zip(on, off, strict=True)
        for key in p_on.finals.keys() & p_off.finals.keys()
    ]
    step = [t for p in on for t in p.caption_final_s]
    step_pct = percentiles(step)
    ratio, process_ratio = caption / base_cpu, process_added / base_cpu
    return {
        "utterances": utterances,
        "audio_s": audio_s,
        "repeats": plan.repeats,
        "words_per_pass": words / len(on),
        "model_calls_per_pass": sum(p.model_calls for p in on) / len(on),
        "cpu_per_audio_s": {
            "without": sum(p.cpu_s for p in off) / seconds,
            "with": sum(p.cpu_s for p in on) / seconds,
            "added_process": process_added,
            "added_caption": caption,
            "caption_step": sum(p.caption_cpu_s for p in on) / seconds,
            "batcher": sum(p.batcher_cpu_s for p in on) / seconds,
        },
        "added_cpu_s_per_1k_words": {
            "process": 1000 * process_added * seconds / words if words else float("nan"),
            "caption": 1000 * caption * seconds / words if words else float("nan"),
        },
        "final_latency_s": {"caption_step": step_pct, "paired": percentiles(paired)},
        "base": {
            "model": plan.base_model,
            "precision": "int8",
            "utterances": base_utterances,
            "cpu_per_audio_s": base_cpu,
            "passes": [b["cpu_per_audio_s"] for b in base_passes],
            "windows": base_passes[0]["windows"],
            "input_ratio": base_passes[0]["input_ratio"],
        },
        "cpu_ratio": ratio,
        "cpu_ratio_process": process_ratio,
        "accept": {
            "cpu_ratio_max": ACCEPT_CPU_RATIO,
            "cpu_met": ratio <= ACCEPT_CPU_RATIO,
            "cpu_met_process": process_ratio <= ACCEPT_CPU_RATIO,
            "final_p95_max_s": ACCEPT_FINAL_P95_S,
            "final_met": step_pct["p95"] <= ACCEPT_FINAL_P95_S,
        },
    }
