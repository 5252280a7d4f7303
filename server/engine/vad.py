"""Silero VAD as a gate: its ONNX model run with onnxruntime, its recurrent state per stream.

The model is the ``silero_vad.onnx`` that the ``silero-vad`` wheel ships, copied into the model
folder by ``asr-export`` (the manifest's ``vad`` entry), so the serving install needs neither torch
nor the wheel. One :class:`SileroVad` (one onnxruntime session, single-threaded) serves every
stream of an engine; each stream's :class:`SileroGate` keeps the model's recurrent state (2 x 128),
the 64-sample context of its previous frame and the speech probability of every 512-sample
(32 ms) frame it has run, at the model's native frame size.

**Batched across streams.** A stream hands its gate the audio as it arrives
(:meth:`SileroGate.accept`, a queue append on the event loop). When any stream needs its
decisions (:meth:`SileroGate.prepare`, in a thread), :meth:`SileroVad.flush` runs the whole
pending frames of *every* stream's gate: step ``j`` runs the ``j``-th pending frame of each gate
that has one as one batch (its rows are independent: each row carries its own state), so 30
streams cost about 31 calls per audio second instead of 930, at under half the CPU per frame
(``python -m bench triton_hop``, docs/scaling.md). A row's result does not depend on its batch
(onnxruntime's CPU kernels give the same bits; ``tests/test_vad.py`` checks the decisions).

The gate marks a window's output frames within ``pad_s`` of a VAD frame whose probability
reaches ``threshold`` (the rule that turns marks into a skip or a trimmed run is :mod:`.gate`'s).
A window reads only the VAD frames that end inside it or before it; its trailing part shorter
than a frame is judged by one extra call on the window's last 512 samples from the state after
its last whole frame, without advancing the state, so decisions are the same however far the
VAD has run ahead.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.gate import EnergyGate, Gate, Mask, speech_mask
from streamasr.server.engine.windows import Samples, Window
from streamasr.server.errors import StreamConfigError
from streamasr.server.manifest import Manifest, VadEntry
from streamasr.server.options.gate import GateConfig, VadGateConfig

log = logging.getLogger(__name__)

VAD_FILE = "silero_vad.onnx"
"""Name of the VAD model in an export folder."""
_STATE_SHAPE = (2, 1, 128)
State = NDArray[np.float32]
"""The model's recurrent state of one stream, shape (2, 1, 128)."""


class SileroVad:
    """The shared Silero VAD session of one engine and the gates of its streams."""

    def __init__(self, path: Path, entry: VadEntry) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.entry = entry
        self.frame = entry.frame_samples
        self.context = entry.context_samples
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._rate = np.array(entry.sample_rate, dtype=np.int64)
        self._gates: dict[int, weakref.ref[SileroGate]] = {}
        self._registry = threading.RLock()
        """Guards ``_gates`` (a weakref callback may run inside a locked section: reentrant)."""
        self._flushing = threading.Lock()
        """One flush at a time; a gate waits on it for a flush another thread started."""
        self.calls = 0
        """Model calls, all streams (a batched step is one call)."""
        self.frames = 0
        """VAD frames run, all streams."""
        self.busy_s = 0.0
        """Wall seconds spent in the model, all streams."""

    @classmethod
    def load(cls, folder: Path, manifest: Manifest) -> SileroVad | None:
        """The folder's VAD, or None when its export has none or the file is not there (a
        Triton frontend's folder may hold only the manifest): ``auto`` then gates by energy,
        ``silero`` is refused."""
        if manifest.vad is None:
            return None
        path = folder / manifest.vad.file
        if not path.is_file():
            log.warning("%s: no VAD file (%s): the Silero gate is unavailable", folder, path.name)
            return None
        return cls(path, manifest.vad)

    def register(self, gate: SileroGate) -> None:
        """Run ``gate``'s frames in every flush until it is garbage."""
        key = id(gate)

        def forget(_: object) -> None:
            with self._registry:
                self._gates.pop(key, None)

        with self._registry:
            self._gates[key] = weakref.ref(gate, forget)

    def run(self, chunk: NDArray[np.float32], state: State) -> tuple[float, State]:
        """Speech probability of one frame (context + frame samples) and the next state."""
        probs, states = self.run_batch(chunk[np.newaxis, :], state)
        return float(probs[0]), states

    def run_batch(
        self, chunks: NDArray[np.float32], states: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Probabilities of ``B`` frames (rows of context + frame samples) from their states
        (2, B, 128), and the next states."""
        started = time.perf_counter()
        prob, new_state = self._session.run(
            None, {"input": chunks, "state": states, "sr": self._rate}
        )
        elapsed = time.perf_counter() - started
        with self._registry:
            self.calls += 1
            self.frames += chunks.shape[0]
            self.busy_s += elapsed
        return np.asarray(prob[:, 0], dtype=np.float32), np.asarray(new_state, dtype=np.float32)

    def flush(self) -> None:
        """Run the whole pending frames of every registered gate, batched step by step; when it
        returns, every window handed to a gate before the call can be judged (blocking)."""
        with self._flushing:
            with self._registry:
                gates = [g for ref in list(self._gates.values()) if (g := ref()) is not None]
            work = [w for w in (g._take() for g in gates) if w is not None]
            size, frame = self.context + self.frame, self.frame
            for step in range(max((w.count for w in work), default=0)):
                rows = [w for w in work if w.count > step]
                at = step * frame
                chunks = np.stack([w.audio[at : at + size] for w in rows])
                states = np.concatenate([w.state for w in rows], axis=1)
                probs, after = self.run_batch(chunks, states)
                for i, w in enumerate(rows):
                    w.advanced(float(probs[i]), after[:, i : i + 1])
            tails = [(w, end, chunk) for w in work for end, chunk in w.tails]
            if tails:  # every window's part after its last whole frame, in one call
                chunks = np.stack([chunk for _, _, chunk in tails])
                states = np.concatenate([w.state_at(end) for w, end, _ in tails], axis=1)
                probs, _ = self.run_batch(chunks, states)
                for (w, end, _), prob in zip(tails, probs.tolist(), strict=True):
                    w.tail_probs[end] = prob
            for w in work:
                w.gate._store(w)


@dataclass
class _Work:
    """One gate's part of a flush: its pending audio and what running it gave."""

    gate: SileroGate
    audio: NDArray[np.float32]
    """The previous frame's context, then the pending samples."""
    count: int
    """Whole frames to run."""
    done: int
    """Stream index just past the last frame run before this flush."""
    state: State
    ends: set[int]
    """Ends of the windows this audio completes."""
    wanted: set[int]
    """Frame ends whose state a window needs (its last whole frame)."""
    tails: list[tuple[int, Samples]]
    """(window end, its last context + frame samples) of the windows ending off the frame grid."""
    probs: list[tuple[int, float]] = field(default_factory=list)
    marks: dict[int, State] = field(default_factory=dict)
    tail_probs: dict[int, float] = field(default_factory=dict)

    def advanced(self, prob: float, state: State) -> None:
        self.state = state
        end = self.done + (len(self.probs) + 1) * self.gate.vad.frame
        self.probs.append((end, prob))
        if end in self.wanted:
            self.marks[end] = state

    def state_at(self, window_end: int) -> State:
        """The state after the last whole frame of the window ending at ``window_end``."""
        frame = self.gate.vad.frame
        return self.marks.get(window_end // frame * frame, self.state)


@dataclass(frozen=True)
class _Mark:
    """What judging a window needs from the flush that ran its audio."""

    state: State
    """After the window's last whole frame."""
    tail: float | None
    """Speech probability of the window's last 32 ms when it ends off the frame grid."""


class SileroGate:
    """One stream's Silero gate (see the module docstring).

    Threads: :meth:`accept`, :meth:`prepare`'s hand-over and :meth:`speech_frames` run on the
    stream's thread; :meth:`_take` and :meth:`_store` in whichever thread flushes, under the
    VAD's flush lock; the results cross under the gate's own lock."""

    def __init__(self, vad: SileroVad, config: VadGateConfig, stride: int) -> None:
        self.vad = vad
        self.config = config
        self.stride = stride
        self._inbox: deque[tuple[Samples, tuple[int, ...], tuple[tuple[int, Samples], ...]]]
        self._inbox = deque()
        """(samples, ends of the windows they complete, their tails), appended by the stream,
        taken by a flush (deque appends and pops are atomic)."""
        self._seen = 0
        """Stream index just past the samples accepted (stream side)."""
        # flush side
        self._state: State = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._audio = np.zeros(vad.context, dtype=np.float32)
        """The last frame's context, then the samples short of a whole frame."""
        self._done = 0
        """Stream index just past the last frame run."""
        # results, under _lock
        self._lock = threading.Lock()
        self._probs: deque[tuple[int, float]] = deque(maxlen=4096)
        """(stream index just past the frame, speech probability) of the frames run."""
        self._marks: dict[int, _Mark] = {}
        """By window end: what the flush that ran its audio left for judging it."""
        vad.register(self)

    prepares = True

    @property
    def probabilities(self) -> list[tuple[int, float]]:
        with self._lock:
            return list(self._probs)

    def accept(self, samples: Samples, windows: list[Window]) -> None:
        """Queue the stream's next samples for the next flush, with the ends of the windows
        they complete (whose states the flush keeps)."""
        ends = tuple(w.end for w in windows)
        size = self.vad.frame + self.vad.context
        tails = tuple(
            (w.end, w.samples[-size:])
            for w in windows
            if w.end % self.vad.frame and w.samples.size >= size
        )
        if samples.shape[0] or ends:
            self._inbox.append((samples, ends, tails))
            self._seen += samples.shape[0]

    def prepare(self, windows: list[Window]) -> None:
        """Run the VAD up to the end of ``windows`` (blocking; a thread may do it)."""
        for window in windows:
            self._advance(window)
        self.vad.flush()

    def speech_frames(self, window: Window) -> Mask:
        """The marks read only frames that end by the window's end and the state after its last
        whole frame, so they are the same however far the VAD ran ahead."""
        self._advance(window)
        with self._lock:
            ready = window.end in self._marks
        if not ready:
            self.vad.flush()
        frame, rate = self.vad.frame, self.vad.entry.sample_rate
        pad = round(self.config.pad_s * rate)
        spans: list[tuple[int, int]] = []
        with self._lock:
            mark = self._marks.pop(window.end, None)
            for end, p in reversed(self._probs):  # newest first; stop before the window's reach
                if end <= window.start - pad:
                    break
                if end <= window.end and p >= self.config.threshold:
                    spans.append((end - frame, end))
        size = frame + self.vad.context
        if window.end % frame and window.samples.size >= size:
            tail = mark.tail if mark is not None else None
            if tail is None:  # a window handed over after the VAD ran past it
                tail = self._peek(window.samples[-size:], self._state)
            if tail >= self.config.threshold:
                spans.append((window.end - frame, window.end))
        return speech_mask(window, spans, pad, self.stride)

    def _advance(self, window: Window) -> None:
        """Accept what ``window`` holds beyond the samples accepted (windows handed over
        directly, without :meth:`accept`)."""
        if window.end <= self._seen:
            return
        offset = self._seen - window.start
        if offset < 0:  # windows cover the stream without gaps; this would be a bug upstream
            raise ValueError(f"window at {window.start} leaves a gap after {self._seen}")
        self.accept(window.samples[offset:], [window])

    def _take(self) -> _Work | None:
        """The pending audio as one flush's work (flush side)."""
        pieces, ends = [self._audio], set[int]()
        tails: list[tuple[int, Samples]] = []
        while self._inbox:
            samples, more, cut = self._inbox.popleft()
            pieces.append(samples)
            ends.update(more)
            tails += cut
        if len(pieces) == 1:
            return None
        frame = self.vad.frame
        audio = np.concatenate(pieces).astype(np.float32, copy=False)
        count = (audio.shape[0] - self.vad.context) // frame
        wanted = {end // frame * frame for end in ends}
        work = _Work(self, audio, count, self._done, self._state, ends, wanted, tails)
        if self._done in wanted:  # a window whose last whole frame ran in an earlier flush
            work.marks[self._done] = self._state
        return work

    def _store(self, work: _Work) -> None:
        """Keep what the flush ran (flush side)."""
        frame = self.vad.frame
        self._state = work.state
        self._done = work.done + work.count * frame
        self._audio = np.ascontiguousarray(work.audio[work.count * frame :])
        with self._lock:
            self._probs.extend(work.probs)
            for end in work.ends:
                self._marks[end] = _Mark(work.state_at(end), work.tail_probs.get(end))

    def _peek(self, chunk: Samples, state: State) -> float:
        """Probability of the last frame of ``chunk`` (context + frame) from ``state``; the
        stream's state is left as it is."""
        prob, _ = self.vad.run(
            np.ascontiguousarray(chunk, dtype=np.float32), np.ascontiguousarray(state)
        )
        return prob


def make_gate(
    config: GateConfig | VadGateConfig | None,
    vad: SileroVad | None,
    stride: int,
    sample_rate: int,
) -> Gate | None:
    """A stream's gate for its setting; ``silero`` without a VAD file in the export is refused
    (StreamConfigError: ``invalid_field`` for a session), ``auto`` falls back to energy."""
    if config is None:
        return None
    if isinstance(config, GateConfig):
        return EnergyGate(config, stride, sample_rate)
    if vad is not None:
        return SileroGate(vad, config, stride)
    if config.fallback_energy:
        return EnergyGate(GateConfig(), stride, sample_rate)
    raise StreamConfigError("gate", "silero", "this export has no VAD file; re-run asr-export")
