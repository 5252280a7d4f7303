"""One recognition stream: audio frames in, partial and final hypotheses out.

The pipeline of a stream is intake (decode, downmix, resample) -> windows -> energy gate ->
scheduler (shared by all streams of a model) -> CTC decoder + endpointer -> events. Windows are
decoded strictly in order. At most ``max_inflight`` windows of a stream wait in the scheduler at
once; a feed returns once all of its windows are decoded, so a stream holds no more than one
frame's audio plus one window beyond what it has decoded, and a slow server pushes back on its
client instead of growing memory. A stream is used by one caller at a time: either the blocking
methods (:meth:`Stream.feed`, :meth:`Stream.finish`) or the coroutines (:meth:`Stream.feed_async`,
:meth:`Stream.finish_async`) that await the scheduler without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streamasr.server.arrays import Logits
from streamasr.server.decoding.ctc import greedy_ids
from streamasr.server.decoding.factory import complete_off_loop
from streamasr.server.decoding.greedy import CtcDecoder, letter_ids
from streamasr.server.engine.audio import AudioIntake
from streamasr.server.engine.captions import Captioner
from streamasr.server.engine.endpoint import Endpointer
from streamasr.server.engine.frontend import model_input
from streamasr.server.engine.gate import GateRuns, Run
from streamasr.server.engine.vad import SileroVad, make_gate
from streamasr.server.engine.windows import (
    Samples,
    Window,
    Windower,
)
from streamasr.server.errors import (
    AsrError,
    ModelGeometryError,
    StreamStateError,
)
from streamasr.server.events import EndReason, Event, Final, Hypothesis, Lagging, Partial, Segment
from streamasr.server.inference.backend import InferenceBackend
from streamasr.server.manifest import Manifest
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.gate import (
    RUN_QUANTUM_FRAMES,
)
from streamasr.server.options.stream import StreamOptions

log = logging.getLogger(__name__)


RawAudio = bytes | bytearray | memoryview | NDArray[np.floating]
"""A frame as the client sent it (bytes in the stream's format) or float samples."""
Clock = Callable[[], float]
"""Seconds on a monotonic clock; streams measure their lag with it (tests pass a fake one)."""


@dataclass
class _Pending:
    window: Window
    future: Future[NDArray[np.float32]] | None
    run: Run | None
    """The frames the model runs on (:meth:`~.gate.GateRuns.plan`); None: the gate skipped it."""


@dataclass
class StreamStats:
    """What a stream cost."""

    windows: int = 0
    """Windows decoded."""
    skipped: int = 0
    """Windows the gate decoded as silence without running the model."""
    trimmed: int = 0
    """Windows the model ran on part of (the gate blanked the rest)."""
    model_samples: int = 0
    """Samples of model input run (a measure of compute)."""


def _result(item: _Pending) -> Logits | None:
    return None if item.future is None else item.future.result()


async def _result_async(item: _Pending) -> Logits | None:
    if item.future is None:
        return None
    logits: Logits = await asyncio.wrap_future(item.future)
    return logits


@dataclass(frozen=True)
class Fed:
    """A frame taken by :meth:`Stream.feed_now`: the events it gave at once, and the windows it
    completed (empty for most frames)."""

    events: list[Event]
    windows: list[Window]


class Stream:
    """A stream of one model; made by :class:`~streamasr.server.engine.engine.Engine`."""

    def __init__(
        self,
        manifest: Manifest,
        scheduler: InferenceBackend,
        *,
        fmt: AudioFormat,
        options: StreamOptions,
        windower: Windower,
        decoder: CtcDecoder,
        clock: Clock = time.monotonic,
        vad: SileroVad | None = None,
        captioner: Captioner | None = None,
        caption_pool: Executor | None = None,
    ) -> None:
        self.manifest = manifest
        self._captioner = captioner
        """Adds captions to the events when the stream punctuates."""
        self._caption_pool = caption_pool
        """Where captioning that calls the model runs in the asyncio API (off the loop)."""
        self.options = options
        self.stats = StreamStats()
        self._scheduler = scheduler
        self._intake = AudioIntake(fmt, manifest.input.sample_rate)
        self._windower = windower
        self._decoder = decoder
        vocab = manifest.vocabulary
        spec = manifest.input
        self._frame_s = spec.frame_stride / spec.sample_rate
        gate = make_gate(options.gate, vad, spec.frame_stride, spec.sample_rate)
        quantum = RUN_QUANTUM_FRAMES if scheduler.batched else 1
        self._gate = GateRuns(gate, spec, len(vocab.tokens), vocab.blank_id, quantum)
        self._endpointer = Endpointer(
            endpoint_frames=max(1, round(options.endpoint_ms / 1000 / self._frame_s)),
            max_segment_frames=round(options.max_segment_s / self._frame_s),
            speech_ids=letter_ids(vocab),
            delimiter_id=vocab.word_delimiter_id,
        )
        self._pending: deque[_Pending] = deque()
        self._frame = 0
        """Frames decoded so far."""
        self._segment_start = 0
        self._segment_index = 0
        self._last_partial: Hypothesis | None = None
        self._clock = clock
        self._started: float | None = None
        self._lagging = False
        self._finished = False
        self._failed: AsrError | None = None

    @property
    def frames(self) -> int:
        """Output frames decoded so far."""
        return self._frame

    @property
    def lagging(self) -> bool:
        return self._lagging

    @property
    def finished(self) -> bool:
        return self._finished

    # -- blocking API -------------------------------------------------------------------------

    def feed(self, data: RawAudio) -> list[Event]:
        """Accept one frame; return the events of the windows it completed."""
        events = self._start_feed()
        return events + self._run_sync(self._windows(data))

    def finish(self) -> list[Event]:
        """End of stream: flush the resampler, decode the last window, close the segment."""
        windows = self._start_finish()
        return self._run_sync(windows)

    def _run_sync(self, windows: list[Window]) -> list[Event]:
        events: list[Event] = []
        with self._failing():
            for window in windows:
                self._submit(window)
                while len(self._pending) > self.options.max_inflight:
                    events += self._captioned(self._complete(_result(self._pending[0])))
            while self._pending:
                events += self._captioned(self._complete(_result(self._pending[0])))
        return events

    # -- asyncio API --------------------------------------------------------------------------

    async def feed_async(self, data: RawAudio) -> list[Event]:
        """:meth:`feed` for an event loop: inference is awaited, never blocked on. A frame that
        completes no window (most of them) returns without suspending."""
        fed = self.feed_now(data)
        if not fed.windows:
            return fed.events
        return await self.decode_async(fed)

    def feed_now(self, data: RawAudio) -> Fed:
        """The part of :meth:`feed_async` that never waits: take the frame, and return the
        windows it completed, not decoded yet (hand them to :meth:`decode_async`, before the
        next frame). Most frames complete none, and are then done: the session calls this from
        the socket's data callback, with no task switch per frame."""
        events = self._start_feed()
        return Fed(events, self._windows(data))

    def hold_room(self) -> int:
        """Bytes of plain 16-bit frames the stream would only hold, completing no window
        (:meth:`~.audio.AudioIntake.hold_room`): a caller may gather frames up to this and
        hand them in as one, with the same result as one by one."""
        return self._intake.hold_room(self._windower.due())

    async def decode_async(self, fed: Fed) -> list[Event]:
        """Decode the windows a :meth:`feed_now` completed; its events, then theirs."""
        return fed.events + await self._run_async(fed.windows)

    async def finish_async(self) -> list[Event]:
        """:meth:`finish` for an event loop."""
        windows = self._start_finish()
        return await self._run_async(windows)

    async def _run_async(self, windows: list[Window]) -> list[Event]:
        events: list[Event] = []
        with self._failing():
            gate = self._gate.gate
            if gate is not None and gate.prepares and windows:  # the VAD runs off the loop
                await asyncio.to_thread(gate.prepare, windows)
            for window in windows:
                self._submit(window)
                while len(self._pending) > self.options.max_inflight:
                    logits = await _result_async(self._pending[0])
                    done = await complete_off_loop(self._decoder, self._complete, logits)
                    events += await self._captioned_async(done)
            while self._pending:
                logits = await _result_async(self._pending[0])
                done = await complete_off_loop(self._decoder, self._complete, logits)
                events += await self._captioned_async(done)
        return events

    def _captioned(self, events: list[Event]) -> list[Event]:
        return events if self._captioner is None else self._captioner.apply(events)

    async def _captioned_async(self, events: list[Event]) -> list[Event]:
        """Captions; where the punctuation model runs, in the caption pool (the model itself
        batches the requests of all streams: :class:`PunctuationBatcher`)."""
        captioner = self._captioner
        if captioner is None or not events:
            return events
        if self._caption_pool is None or not captioner.needs_model(events):
            return captioner.apply(events)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._caption_pool, captioner.apply, events)

    # -- shared steps -------------------------------------------------------------------------

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """An error past the intake leaves windows undecoded: the stream cannot go on."""
        try:
            yield
        except AsrError as exc:
            self._failed = exc
            raise

    def _start_feed(self) -> list[Event]:
        if self._failed is not None or self._finished:
            self._check_usable()
        now = self._clock()
        if self._started is None:
            self._started = now
        intake = self._intake  # received_seconds, without a call per frame
        lag = now - self._started - intake.received_samples / intake.format.sample_rate
        if not self._lagging and lag > self.options.lag_report_s:
            self._lagging = True
            log.warning("stream is %.1f s behind real time", lag)
            return [Lagging(round(lag, 3))]
        if self._lagging and lag < self.options.lag_report_s / 2:
            self._lagging = False
        return []

    def _start_finish(self) -> list[Window]:
        self._check_usable()
        self._finished = True
        samples = self._intake.flush()
        windows = self._windower.push(samples) + self._windower.finish()
        return self._accepted(samples, windows)

    def _windows(self, data: RawAudio) -> list[Window]:
        """The windows ``data`` completes (plain frames wait in the intake until one is due)."""
        samples = self._intake.hold(data, self._windower.due())
        if samples is None:
            return []
        return self._accepted(samples, self._windower.push(samples))

    def _accepted(self, samples: Samples, windows: list[Window]) -> list[Window]:
        gate = self._gate.gate
        if gate is not None and gate.prepares:  # a model gate starts on the audio now
            gate.accept(samples, windows)
        return windows

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StreamStateError(f"the stream failed earlier ({self._failed})")
        if self._finished:
            raise StreamStateError("the stream is finished")

    def _submit(self, window: Window) -> None:
        plan = self._gate.plan(window)
        if plan is None:
            self._pending.append(_Pending(window, None, None))
            self.stats.skipped += 1
            return
        run, samples = plan
        self.stats.trimmed += samples is not window.samples
        data = model_input(samples, self.manifest.input)
        self._pending.append(_Pending(window, self._scheduler.submit(data), run))
        self.stats.model_samples += samples.shape[0]

    def _complete(self, logits: Logits | None) -> list[Event]:
        item = self._pending.popleft()
        window, run = item.window, item.run
        if logits is not None and run is not None and logits.shape[0] != run.frames:
            raise ModelGeometryError(
                self.manifest.name,
                f"a window gave {logits.shape[0]} frames, the manifest promises {run.frames}",
            )
        logits = self._gate.logits(logits, run, window.num_frames)
        self.stats.windows += 1
        kept = logits[window.keep_start : window.keep_stop]
        lookahead = logits[window.keep_stop : window.num_frames]
        events: list[Event] = []
        labels = greedy_ids(kept)
        position = 0
        while (cut := self._endpointer.scan(labels[position:])) is not None:
            stop = position + cut.at
            self._decoder.advance(kept[position:stop], lookahead[:0])
            self._frame += cut.at
            events += self._close_segment(cut.reason)
            position = stop
        hypothesis = self._decoder.advance(kept[position:], lookahead)
        self._frame += kept.shape[0] - position
        if window.final:
            events += self._close_segment("end_of_stream")
        elif hypothesis != self._last_partial and (hypothesis.text or self._last_partial):
            self._last_partial = hypothesis
            end = window.end / self.manifest.input.sample_rate
            events.append(Partial(self._segment_index, hypothesis, round(end, 6)))
        return events

    def _close_segment(self, reason: EndReason) -> list[Event]:
        decoded = self._decoder.end_segment()
        self._endpointer.reset()
        start, self._segment_start = self._segment_start, self._frame
        self._last_partial = None
        if not decoded.text:
            return []
        segment = Segment(
            index=self._segment_index,
            text=decoded.text,
            words=decoded.words,
            start=round(start * self._frame_s, 6),
            end=round(self._frame * self._frame_s, 6),
            reason=reason,
            alternatives=decoded.alternatives,
        )
        self._segment_index += 1
        return [Final(segment)]
