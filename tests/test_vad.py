"""Silero VAD: the export carries its ONNX file; the gate matches the reference, per stream."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest

import streamasr.server.engine.gate as gate_module
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.gate import (
    EnergyGate,
    Gate,
    GateRuns,
    JudgesInline,
    Mask,
    Run,
    is_silent,
    window_run,
)
from streamasr.server.engine.offline import stream_array
from streamasr.server.engine.vad import SileroGate, SileroVad, make_gate
from streamasr.server.engine.windows import Window
from streamasr.server.errors import StreamConfigError
from streamasr.server.events import Final, Partial
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.manifest import InputSpec, read_manifest, sha256_file
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.gate import (
    RUN_QUANTUM_FRAMES,
    GateConfig,
    VadGateConfig,
    gate_config,
    gate_kind,
)
from streamasr.server.options.stream import StreamOptions

from .service_util import read_mono

RATE = 16000


@pytest.fixture(scope="module")
def engine(fixture_export: Path) -> Engine:
    runtime = RuntimeConfig(device="cpu", precision="int8")
    with Engine(fixture_export, EngineConfig(runtime)) as e:
        yield e


@pytest.fixture(scope="module")
def speech(tts_set: list[tuple[Path, str]]) -> np.ndarray:
    audio, rate = read_mono(tts_set[3][0])
    assert rate == RATE
    return audio.astype(np.float32)


def window_at(samples: np.ndarray, start: int, stop: int) -> Window:
    frames = (stop - start) // 320
    return Window(0, samples[start:stop], start, start // 320, frames, 0, frames, False)


def test_the_export_carries_the_vad_file(fixture_export: Path) -> None:
    entry = read_manifest(fixture_export).vad
    assert entry is not None and entry.source.startswith("silero-vad ")
    path = fixture_export / entry.file
    assert sha256_file(path) == entry.sha256 and path.stat().st_size == entry.bytes
    assert (entry.frame_samples, entry.context_samples, entry.sample_rate) == (512, 64, 16000)


def test_chunked_gate_equals_the_wheel_reference(engine: Engine, speech: np.ndarray) -> None:
    """Frame probabilities of windows of odd sizes equal silero-vad's own ONNX wrapper on the
    whole signal (the wheel, with torch, is in the test environment; the server never uses it)."""
    torch = pytest.importorskip("torch")
    utils = pytest.importorskip("silero_vad.utils_vad")
    assert engine.vad is not None
    reference = utils.OnnxWrapper(str(engine.folder / "silero_vad.onnx"), force_onnx_cpu=True)
    whole = speech[: (speech.size // 512) * 512]
    expected = reference.audio_forward(torch.from_numpy(whole), RATE).numpy()[0]
    gate = SileroGate(engine.vad, VadGateConfig(), 320)
    start, sizes = 0, [4800, 7040, 11200, 3200]
    i = 0
    while start < whole.size:
        stop = min(whole.size, start + sizes[i % len(sizes)])
        gate.prepare([window_at(whole, max(0, start - 1600), stop)])  # with left context
        start, i = stop, i + 1
    got = np.array([p for _, p in gate.probabilities])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_gate_tells_silence_from_speech(engine: Engine, speech: np.ndarray) -> None:
    assert engine.vad is not None
    rng = np.random.default_rng(3)
    quiet = (0.003 * rng.standard_normal(3 * RATE)).astype(np.float32)
    audio = np.concatenate([quiet, speech, quiet])
    gate = SileroGate(engine.vad, VadGateConfig(pad_s=0.0), 320)
    silent = []
    for start in range(0, audio.size - RATE, RATE):
        silent.append(is_silent(gate, window_at(audio, start, start + RATE)))
    assert silent[:2] == [True, True]  # the leading quiet
    assert not any(silent[3 : 3 + speech.size // RATE])  # every window of speech runs
    assert silent[-1]


def test_speech_in_the_last_partial_frame_is_seen(engine: Engine, speech: np.ndarray) -> None:
    """Speech starting in the window's last 32 ms, after its last whole VAD frame."""
    assert engine.vad is not None
    gate = SileroGate(engine.vad, VadGateConfig(pad_s=0.0), 320)
    onset = np.abs(speech) > 0.05 * np.abs(speech).max()
    first = int(np.argmax(onset))
    audio = np.concatenate([np.zeros(RATE, np.float32), speech[first:]])
    stop = RATE + 800 + 320 * 2  # 1 s of silence, then 60 ms of speech (not a whole frame more)
    assert is_silent(gate, window_at(audio, 0, RATE - 320))
    assert not is_silent(gate, window_at(audio, RATE - 320 - 1600, stop))


def test_gates_by_name(engine: Engine) -> None:
    assert gate_config("none") is None
    assert isinstance(gate_config("energy"), GateConfig)
    assert gate_config("silero") == VadGateConfig()
    for name in ("none", "energy", "silero", "auto"):
        assert gate_kind(gate_config(name)) == name
    with pytest.raises(StreamConfigError):
        gate_config("loud")
    assert isinstance(make_gate(VadGateConfig(), engine.vad, 320, RATE), SileroGate)
    assert isinstance(make_gate(gate_config("auto"), None, 320, RATE), EnergyGate)
    with pytest.raises(StreamConfigError, match="VAD"):
        make_gate(VadGateConfig(), None, 320, RATE)


def test_silero_gate_skips_pauses_and_keeps_the_words(engine: Engine, speech: np.ndarray) -> None:
    pause = np.zeros(3 * RATE, dtype=np.float32)
    audio = np.concatenate([pause, speech, pause, speech, pause])
    ungated = stream_array(engine, audio, RATE, StreamOptions(gate=None), [320])
    stream = engine.stream(AudioFormat("f32le"), StreamOptions(gate=VadGateConfig()))
    events = []
    for start in range(0, audio.size, 320):
        events += stream.feed(audio[start : start + 320])
    events += stream.finish()
    text = " ".join(e.segment.text for e in events if isinstance(e, Final))
    # the same words, up to a letter or two: runs trimmed to the speech drop 3 s of quiet context
    assert SequenceMatcher(None, text, ungated.text).ratio() > 0.97, (text, ungated.text)
    assert abs(len(text.split()) - len(ungated.text.split())) <= 1
    assert stream.stats.skipped >= 6  # about 9 s of pauses at 1 s hops
    assert engine.vad is not None and engine.vad.calls > 0


def test_silero_ends_the_segment_in_a_noisy_pause(engine: Engine, speech: np.ndarray) -> None:
    """White noise at 10 dB SNR over speech, 2 s pause, speech: the frames the VAD leaves out
    decode as blanks, so the blank-run endpoint fires in the pause (without a gate the noise
    decodes to stray letters there, bench.stream.noise's "pauses ended")."""
    pause = np.zeros(2 * RATE, dtype=np.float32)
    clean = np.concatenate([speech, pause, speech])
    power = float(np.mean(speech.astype(np.float64) ** 2))
    noise = np.random.default_rng(7).standard_normal(clean.size) * np.sqrt(power / 10)
    audio = (clean + noise).astype(np.float32)
    result = stream_array(engine, audio, RATE, StreamOptions(gate=VadGateConfig()), [320])
    first_end, second_start = speech.size / RATE, (speech.size + pause.size) / RATE
    ends = [segment.end for segment in result.segments]
    assert any(first_end <= t <= second_start + 0.2 for t in ends), ends


def test_async_feed_runs_the_vad_and_decodes_the_same(engine: Engine, speech: np.ndarray) -> None:
    audio = np.concatenate([np.zeros(2 * RATE, np.float32), speech])
    options = StreamOptions(gate=VadGateConfig())
    blocking = stream_array(engine, audio, RATE, options, [1600]).text

    async def run() -> tuple[str, int]:
        stream = engine.stream(AudioFormat("f32le"), options)
        events = []
        for start in range(0, audio.size, 1600):
            events += await stream.feed_async(audio[start : start + 1600])
        events += await stream.finish_async()
        texts = [e.segment.text for e in events if isinstance(e, Final)]
        return " ".join(texts), stream.stats.skipped

    text, skipped = asyncio.run(run())
    assert text == blocking and skipped >= 1


def test_no_vad_file_no_silero(fixture_export: Path, tmp_path: Path) -> None:
    manifest = read_manifest(fixture_export)
    assert SileroVad.load(fixture_export, replace(manifest, vad=None)) is None
    assert SileroVad.load(tmp_path, manifest) is None  # a folder with the manifest only


def test_decisions_do_not_depend_on_how_far_the_vad_ran(engine: Engine, speech: np.ndarray) -> None:
    """feed_async prepares all windows of a frame first; the decisions must be the same."""
    assert engine.vad is not None
    audio = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    starts = range(0, audio.size - 8000, 5000)  # windows ending off the 512-sample grid
    windows = [window_at(audio, max(0, s - 1600), s + 5000 + 80) for s in starts]
    one_by_one = SileroGate(engine.vad, VadGateConfig(pad_s=0.0), 320)
    ahead = SileroGate(engine.vad, VadGateConfig(pad_s=0.0), 320)
    ahead.prepare(windows)
    for window in windows:
        np.testing.assert_array_equal(one_by_one.speech_frames(window), ahead.speech_frames(window))


class MaskGate(JudgesInline):
    """A gate that marks the frames it is told to (local frames of every window)."""

    def __init__(self, *marked: int) -> None:
        self.marked = marked

    def speech_frames(self, window: Window) -> Mask:
        mask = np.zeros(window.num_frames, dtype=np.bool_)
        mask[list(self.marked)] = True
        return mask


def steady_window() -> Window:
    """16 frames of left context, 50 kept, 8 of lookahead (L 0.32 / C 1 / R 0.16 s)."""
    return Window(5, np.zeros(74 * 320 + 80, np.float32), 32000, 100, 74, 16, 66, False)


def test_the_hop_decides(engine: Engine) -> None:
    """Speech only in the left context or the lookahead: skipped; in the hop: the model runs on
    the marked stretches (with marked context next to them, rounded to the
    quantum), split where 0.5 s or more is unmarked; the rest is blank."""
    spec, w = engine.manifest.input, steady_window()
    whole = Run(((0, 74),))
    assert window_run(MaskGate(*range(0, 16)), w, spec) is None  # speech ends before the hop
    assert window_run(MaskGate(*range(66, 74)), w, spec) is None  # starts in the lookahead
    assert window_run(None, w, spec) == whole
    assert window_run(MaskGate(*range(0, 74)), w, spec) == whole
    run = window_run(MaskGate(*range(0, 20)), w, spec)  # speech ends in the hop
    assert run is not None and run.stretches[0][0] == 0 and 20 <= run.stretches[0][1] < 28
    run = window_run(MaskGate(*range(30, 41)), w, spec)  # a word in the hop
    assert run is not None and len(run.stretches) == 1
    first, stop = run.stretches[0]
    assert first <= 30 and stop >= 41 and run.frames < 74
    run = window_run(MaskGate(*range(20, 24), *range(55, 60)), w, spec)  # 31 frames apart
    assert run is not None and len(run.stretches) == 2
    assert run.stretches[0][1] <= 55 and run.stretches[1][1] >= 60
    joined = window_run(MaskGate(*range(20, 24), *range(40, 45)), w, spec)  # 16 frames apart
    assert joined is not None and len(joined.stretches) == 1
    for r in (run, joined):
        assert r.frames % RUN_QUANTUM_FRAMES == 0
    word = window_run(MaskGate(*range(30, 41)), w, spec, quantum=1)  # a backend that never batches
    assert word == Run(((30, 41),))


def test_runs_are_rounded_only_where_windows_batch(
    engine: Engine, fixture_export: Path, speech: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """int8 on CPU runs each window alone: trimmed runs keep their length. fp32 batches windows
    of equal shape: trimmed runs are whole multiples of the quantum."""
    pause = np.zeros(int(1.7 * RATE), dtype=np.float32)
    audio = np.concatenate([pause, speech, pause, speech[: RATE + 777], pause])
    trimmed: list[int] = []

    def recording(gate: Gate | None, window: Window, spec: InputSpec, quantum: int) -> Run | None:
        run = window_run(gate, window, spec, quantum)
        if run is not None and not run.whole(window.num_frames):
            trimmed.append(run.frames)
        return run

    monkeypatch.setattr(gate_module, "window_run", recording)
    fp32 = Engine(fixture_export, EngineConfig(RuntimeConfig(device="cpu", precision="fp32")))
    frames: dict[bool, list[int]] = {}
    with fp32:
        for e in (engine, fp32):
            trimmed.clear()
            stream_array(e, audio, RATE, StreamOptions(gate=VadGateConfig()), [320])
            frames[e.scheduler.batched] = list(trimmed)
    assert set(frames) == {False, True}
    assert frames[True] and all(n % RUN_QUANTUM_FRAMES == 0 for n in frames[True])
    assert any(n % RUN_QUANTUM_FRAMES for n in frames[False]), frames[False]


def test_a_trimmed_run_gives_its_frames_and_blanks(engine: Engine) -> None:
    spec, w = engine.manifest.input, steady_window()
    vocab = engine.manifest.vocabulary
    runs = GateRuns(MaskGate(*range(30, 41)), spec, len(vocab.tokens), vocab.blank_id)
    plan = runs.plan(w)
    assert plan is not None
    run, samples = plan
    assert spec.num_frames(samples.size) == run.frames
    (first, stop), *_ = run.stretches
    model = np.ones((run.frames, len(vocab.tokens)), np.float32)
    logits = runs.logits(model, run, w.num_frames)
    assert logits.shape == (74, len(vocab.tokens))
    np.testing.assert_array_equal(logits[first:stop], model)
    blank = np.argmax(np.delete(logits, np.s_[first:stop], axis=0), axis=1)
    assert set(blank.tolist()) == {vocab.blank_id}


def test_silero_skips_a_hop_with_speech_only_in_its_context(
    engine: Engine, speech: np.ndarray
) -> None:
    """Speech ends 0.6 s before the hop starts: the left context (1 s) holds speech, the hop
    does not, so the window is skipped; a window whose hop holds the speech is not."""
    assert engine.vad is not None
    loud = np.flatnonzero(np.abs(speech) > 0.05 * np.abs(speech).max())
    audio = np.concatenate([speech[: loud[-1] + 1], np.zeros(3 * RATE, np.float32)])
    left, hop = 50, 50  # frames
    hop_start = (loud[-1] + int(0.6 * RATE)) // 320 * 320
    start = hop_start - left * 320
    window = Window(
        1, audio[start : start + (left + hop) * 320 + 80], start, start // 320, left + hop, left,
        left + hop, False,
    )  # fmt: skip
    gate = SileroGate(engine.vad, VadGateConfig(pad_s=0.1), 320)
    gate.prepare([window_at(audio, 0, start)])
    mask = gate.speech_frames(window)
    assert mask[: window.keep_start].any() and is_silent(gate, window)
    fresh = SileroGate(engine.vad, VadGateConfig(pad_s=0.1), 320)
    assert not is_silent(fresh, window_at(audio, 0, 2 * RATE))


def test_gated_frames_are_decided_once_and_commits_hold(engine: Engine, speech: np.ndarray) -> None:
    """With skipped and trimmed windows, the stream decides exactly the offline frame count,
    committed text only grows within a segment, and the words survive."""
    pause = np.zeros(int(2.3 * RATE), dtype=np.float32)
    audio = np.concatenate([pause, speech, pause, speech[: RATE + 777], pause])
    stream = engine.stream(AudioFormat("f32le"), StreamOptions(gate=VadGateConfig()))
    events = []
    for start in range(0, audio.size, 320):
        events += stream.feed(audio[start : start + 320])
    events += stream.finish()
    assert stream.frames == engine.manifest.input.num_frames(audio.size)
    assert stream.stats.skipped >= 2 and stream.stats.trimmed >= 2
    committed: dict[int, str] = {}
    for event in events:
        if isinstance(event, Partial):
            assert event.hypothesis.committed.startswith(committed.get(event.segment, ""))
            committed[event.segment] = event.hypothesis.committed
        elif isinstance(event, Final):
            assert event.segment.text.startswith(committed.get(event.segment.index, ""))
    ungated = stream_array(engine, audio, RATE, StreamOptions(gate=None), [320])
    finals = [e.segment.text for e in events if isinstance(e, Final)]
    assert SequenceMatcher(None, " ".join(finals), ungated.text).ratio() > 0.9


def test_energy_gate_marks_loud_frames_with_margin() -> None:
    gate = EnergyGate(GateConfig(pad_s=0.1), 320, RATE)
    audio = (0.001 * np.random.default_rng(1).standard_normal(3 * RATE)).astype(np.float32)
    audio[RATE : RATE + 3200] += 0.3  # 0.2 s loud
    frames = (audio.size - 80) // 320
    mask = gate.speech_frames(Window(0, audio, 0, 0, frames, 0, frames, False))
    assert mask[50:60].all() and mask[45:65].all() and not mask[:40].any()
    assert not mask[70:].any()
