"""Silero VAD as a gate: its ONNX model run with onnxruntime, its recurrent state per stream.

The model is the ``silero_vad.onnx`` that the ``silero-vad`` wheel ships, copied into the model
folder by ``asr-export`` (the manifest's ``vad`` entry), so the serving install needs neither torch
nor the wheel. One :class:`SileroVad` (one onnxruntime session, single-threaded) serves every
stream of an engine; each stream's :class:`SileroGate` keeps the model's recurrent state (2 x 128),
the 64-sample context of its previous frame and the speech probability of every 512-sample
(32 ms) frame it has run, at the model's native frame size.

The gate marks a window's output frames within ``pad_s`` of a VAD frame whose probability
reaches ``threshold`` (the rule that turns marks into a skip or a trimmed run is :mod:`.gate`'s).
A window reads only the VAD frames that end inside it or before it; its trailing part shorter
than a frame is judged by one extra call on the window's last 512 samples without advancing the
state. :meth:`SileroGate.prepare` runs the frames of a batch of windows at once, so an event loop
can run it in a thread (:meth:`~.stream.Stream.feed_async` does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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


class SileroVad:
    """The shared Silero VAD session of one engine; thread-safe (onnxruntime sessions are)."""

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
        self._lock = threading.Lock()
        self.calls = 0
        self.busy_s = 0.0
        """Wall seconds spent in the model, all streams (``calls`` frames)."""

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

    def run(
        self, chunk: NDArray[np.float32], state: NDArray[np.float32]
    ) -> tuple[float, NDArray[np.float32]]:
        """Speech probability of one frame (context + frame samples) and the next state."""
        started = time.perf_counter()
        prob, new_state = self._session.run(
            None, {"input": chunk[np.newaxis, :], "state": state, "sr": self._rate}
        )
        with self._lock:
            self.calls += 1
            self.busy_s += time.perf_counter() - started
        return float(prob[0, 0]), new_state


class SileroGate:
    """One stream's Silero gate (see the module docstring)."""

    def __init__(self, vad: SileroVad, config: VadGateConfig, stride: int) -> None:
        self.vad = vad
        self.config = config
        self.stride = stride
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(vad.context, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._seen = 0
        """Stream index just past the samples handed to the VAD (run or pending)."""
        self._probs: deque[tuple[int, float]] = deque(maxlen=4096)
        """(stream index just past the frame, speech probability) of the frames run."""
        self._last = 0.0
        self._marks: dict[int, NDArray[np.float32]] = {}
        """State after the last whole frame of each window advanced but not yet judged."""

    prepares = True

    @property
    def probabilities(self) -> list[tuple[int, float]]:
        return list(self._probs)

    def prepare(self, windows: list[Window]) -> None:
        """Run the VAD on the audio of ``windows`` (blocking; a thread may do it)."""
        for window in windows:
            self._advance(window)

    def speech_frames(self, window: Window) -> Mask:
        """The marks read only frames that end by the window's end and the state after its last
        whole frame, so they are the same however far :meth:`prepare` ran ahead."""
        self._advance(window)
        state = self._marks.pop(window.end, self._state)
        frame, rate = self.vad.frame, self.vad.entry.sample_rate
        pad = round(self.config.pad_s * rate)
        spans: list[tuple[int, int]] = []
        for end, p in reversed(self._probs):  # newest first; stop before the window's reach
            if end <= window.start - pad:
                break
            if end <= window.end and p >= self.config.threshold:
                spans.append((end - frame, end))
        size = frame + self.vad.context
        tail = window.end % frame and window.samples.size >= size
        if tail and self._peek(window.samples[-size:], state) >= self.config.threshold:
            spans.append((window.end - frame, window.end))
        return speech_mask(window, spans, pad, self.stride)

    def _advance(self, window: Window) -> None:
        if window.end <= self._seen:
            return
        offset = self._seen - window.start
        if offset < 0:  # windows cover the stream without gaps; this would be a bug upstream
            raise ValueError(f"window at {window.start} leaves a gap after {self._seen}")
        audio = np.concatenate([self._pending, window.samples[offset:]])
        self._seen = window.end
        frame = self.vad.frame
        whole = audio.size // frame
        end = self._seen - audio.size
        for i in range(whole):
            self._run(audio[i * frame : (i + 1) * frame])
            end += frame
            self._probs.append((end, self._last))
        self._pending = np.ascontiguousarray(audio[whole * frame :])
        self._marks[window.end] = self._state

    def _run(self, frame: Samples) -> None:
        chunk = np.concatenate([self._context, frame]).astype(np.float32, copy=False)
        self._last, self._state = self.vad.run(chunk, self._state)
        self._context = chunk[-self.vad.context :]

    def _peek(self, chunk: Samples, state: NDArray[np.float32]) -> float:
        """Probability of the last frame of ``chunk`` (context + frame) from ``state``; the
        stream's state is left as it is."""
        prob, _ = self.vad.run(np.ascontiguousarray(chunk, dtype=np.float32), state)
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
