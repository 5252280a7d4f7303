"""Silero VAD: the export carries its ONNX file; the gate matches the reference, per stream."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamasr.server.audio import AudioFormat
from streamasr.server.engine import Engine, EngineConfig
from streamasr.server.errors import StreamConfigError
from streamasr.server.events import Final
from streamasr.server.gate import EnergyGate, GateConfig, VadGateConfig, gate_config, gate_kind
from streamasr.server.manifest import read_manifest, sha256_file
from streamasr.server.offline import stream_array
from streamasr.server.runtime import RuntimeConfig
from streamasr.server.stream import StreamOptions
from streamasr.server.vad import SileroGate, SileroVad, make_gate
from streamasr.server.windows import Window

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
        silent.append(gate.is_silent(window_at(audio, start, start + RATE)))
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
    assert gate.is_silent(window_at(audio, 0, RATE - 320))
    assert not gate.is_silent(window_at(audio, RATE - 320 - 1600, stop))


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
    assert text == ungated.text
    assert stream.stats.skipped >= 6  # about 9 s of pauses at 1 s hops
    assert engine.vad is not None and engine.vad.calls > 0


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
    assert [one_by_one.is_silent(w) for w in windows] == [ahead.is_silent(w) for w in windows]
