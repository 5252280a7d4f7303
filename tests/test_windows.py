"""Windowing: frames kept over a stream equal the offline frames, whatever the frame sizes."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from streamasr.server.engine.windows import (
    SampleBuffer,
    SlidingWindower,
    WholeWindower,
    Window,
    WindowPlan,
)
from streamasr.server.errors import ModelGeometryError, StreamConfigError
from streamasr.server.manifest import InputSpec

WAVEFORM = InputSpec(
    kind="waveform",
    name="input_values",
    sample_rate=16000,
    frame_stride=320,
    receptive_field=400,
    normalize=True,
    attention_mask=False,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
)
FBANK = InputSpec(
    kind="fbank",
    name="input_features",
    sample_rate=16000,
    frame_stride=320,
    receptive_field=560,
    normalize=True,
    attention_mask=True,
    feature_size=160,
    num_mel_bins=80,
    stack_stride=2,
)
PLANS = [
    WindowPlan(0, 320, 0),
    WindowPlan(16000, 16000, 5120),
    WindowPlan(5120, 10240, 2560),
    WindowPlan(64000, 32000, 10240),
    WindowPlan(640, 5120, 0),
]
LENGTHS = [0, 1, 399, 400, 719, 720, 721, 5119, 16000, 16079, 16080, 16081, 37_777, 80_000, 123_457]


def run(
    windower: SlidingWindower | WholeWindower, audio: NDArray[np.float32], seed: int
) -> list[Window]:
    rng = np.random.default_rng(seed)
    windows: list[Window] = []
    position = 0
    while position < audio.size:
        size = int(rng.choice([1, 160, 321, int(rng.integers(1, 20_000))]))
        windows += windower.push(audio[position : position + size])
        position += size
    return windows + windower.finish()


@pytest.mark.parametrize("spec", [WAVEFORM, FBANK], ids=["waveform", "fbank"])
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"L{p.left}-C{p.hop}-R{p.lookahead}")
def test_kept_frames_tile_the_offline_frames(spec: InputSpec, plan: WindowPlan) -> None:
    for n in LENGTHS:
        audio = np.arange(n, dtype=np.float32)
        windows = run(SlidingWindower(plan, spec), audio, seed=n)
        kept = [w.first_frame + f for w in windows for f in range(w.keep_start, w.keep_stop)]
        assert kept == list(range(spec.num_frames(n))), n
        for w in windows:
            assert np.array_equal(w.samples, audio[w.start : w.end])
            assert w.start % 320 == 0 and w.first_frame == w.start // 320
            assert w.num_frames == spec.num_frames(w.samples.size)
            assert 0 <= w.keep_start < w.keep_stop <= w.num_frames
            assert w.start >= max(0, (w.first_frame + w.keep_start) * 320 - plan.left)
        assert [w.index for w in windows] == list(range(len(windows)))
        assert not any(w.final for w in windows[:-1])


def test_steady_windows_have_one_length() -> None:
    plan = WindowPlan(16000, 16000, 5120)
    windows = run(SlidingWindower(plan, WAVEFORM), np.zeros(200_000, np.float32), seed=1)
    steady = [w for w in windows if w.start > 0 and not w.final]
    assert steady
    assert {w.samples.size for w in steady} == {16000 + 16000 + 5120 + 80}
    assert all(w.kept_frames == 50 and w.num_frames - w.keep_stop == 16 for w in steady)
    # the first window has no left context, as in the offline run
    assert windows[0].start == 0 and windows[0].keep_start == 0


def test_window_waits_for_its_lookahead() -> None:
    plan = WindowPlan(0, 3200, 1600)
    windower = SlidingWindower(plan, WAVEFORM)
    assert windower.push(np.zeros(3200 + 80 + 1599, np.float32)) == []
    (window,) = windower.push(np.zeros(1, np.float32))
    assert window.end == 3200 + 80 + 1600


def test_whole_windower_keeps_everything() -> None:
    audio = np.arange(50_001, dtype=np.float32)
    (window,) = run(WholeWindower(WAVEFORM), audio, seed=3)
    assert window.num_frames == WAVEFORM.num_frames(audio.size) == window.keep_stop
    assert np.array_equal(window.samples, audio)
    assert WholeWindower(WAVEFORM).finish() == []


def test_plan_validation() -> None:
    with pytest.raises(StreamConfigError, match="multiple of 320"):
        WindowPlan(100, 320, 0)
    with pytest.raises(StreamConfigError, match="hop"):
        WindowPlan(0, 0, 0)
    with pytest.raises(StreamConfigError, match="20 ms"):
        WindowPlan.from_seconds(0.5, 1.01, 0.0, WAVEFORM)
    plan = WindowPlan.from_seconds(1.0, 0.64, 0.32, WAVEFORM)
    assert (plan.left, plan.hop, plan.lookahead) == (16000, 10240, 5120)


def test_adapter_frames_align_on_their_stride() -> None:
    adapter = InputSpec(
        **{
            **FBANK.__dict__,
            "adapter_layers": 1,
            "adapter_kernel": 3,
            "adapter_stride": 2,
            "frame_stride": 640,
        }
    )
    plan = WindowPlan(6400, 6400, 1280, stride=640)
    windows = run(SlidingWindower(plan, adapter), np.zeros(55_555, np.float32), seed=4)
    kept = [w.first_frame + f for w in windows for f in range(w.keep_start, w.keep_stop)]
    assert kept == list(range(adapter.num_frames(55_555)))


def test_inconsistent_geometry_is_refused() -> None:
    wrong = InputSpec(**{**WAVEFORM.__dict__, "receptive_field": 800})
    with pytest.raises(ModelGeometryError, match="cannot be aligned"):
        SlidingWindower(WindowPlan(0, 3200, 0), wrong)
    with pytest.raises(ModelGeometryError, match="stride"):
        SlidingWindower(WindowPlan(0, 6400, 0, stride=640), WAVEFORM)


def test_sample_buffer_addresses_stream_indices() -> None:
    buffer = SampleBuffer(capacity=4)
    for i in range(0, 100, 7):
        buffer.append(np.arange(i, min(i + 7, 100), dtype=np.float32))
    buffer.drop_before(40)
    assert buffer.start == 40 and buffer.end == 100
    assert np.array_equal(buffer.read(50, 60), np.arange(50, 60, dtype=np.float32))
    with pytest.raises(IndexError):
        buffer.read(39, 45)
