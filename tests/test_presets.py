"""Per-model window defaults and latency presets: manifest section, precedence, protocol, server."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.preset_rules import RULE_WINDOWS, rule_section, with_rule_presets
from streamasr.server.engine.windows import WindowPlan, check_geometry
from streamasr.server.errors import (
    InvalidFieldError,
    ManifestError,
    ServerConfigError,
    StreamConfigError,
)
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.manifest import InputSpec, read_manifest, write_manifest
from streamasr.server.options.gate import GateConfig, VadGateConfig
from streamasr.server.options.presets import (
    PRESET_NAMES,
    Preset,
    StreamingSection,
    Windows,
    resolve_windows,
)
from streamasr.server.options.stream import (
    DEFAULT_HOP_S,
    DEFAULT_LEFT_S,
    DEFAULT_LOOKAHEAD_S,
    StreamOptions,
)
from streamasr.server.protocol.v1 import StartMessage, parse_text
from streamasr.server.service.config import ServerConfig, load_config
from tests.test_windows import FBANK

from .service_util import ServerThread, http_get, read_mono, server_config, stream_v1

BUILT_IN = Windows(DEFAULT_LEFT_S, DEFAULT_HOP_S, DEFAULT_LOOKAHEAD_S)
DEFAULTS = Windows(0.64, 0.64, 0.16)
FAST = Windows(1.0, 0.32, 0.0)
SECTION = StreamingSection(
    DEFAULTS,
    "balanced",
    {
        "fast": Preset(FAST, {"word_p95_s": 0.5, "wer": 0.2}),
        "balanced": Preset(DEFAULTS, {"word_p95_s": 0.9, "wer": 0.1}),
    },
    {"rules": {"balanced": "a rule"}},
)


def windows_of(options: StreamOptions) -> Windows:
    return Windows(options.left_s, options.hop_s, options.lookahead_s)


# -- the section and the precedence ---------------------------------------------------------------


def test_section_round_trips_through_the_manifest(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    assert read_manifest(folder).streaming == SECTION


def test_a_manifest_without_the_section_is_read(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, None)
    raw = json.loads((folder / "manifest.json").read_text())
    assert "streaming" not in raw
    assert read_manifest(folder).streaming is None


def test_a_malformed_section_is_a_manifest_error(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["streaming"]["defaults"]["preset"] = "nonesuch"
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="nonesuch"):
        read_manifest(folder)


def test_presets_without_the_tuned_flag_read_as_tuned(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    raw = json.loads((folder / "manifest.json").read_text())
    assert raw["streaming"]["presets"]["fast"].pop("tuned") is True
    (folder / "manifest.json").write_text(json.dumps(raw))
    section = read_manifest(folder).streaming
    assert section is not None and section.presets["fast"].tuned and section.presets_tuned
    raw["streaming"]["presets"]["fast"]["tuned"] = "no"
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="tuned"):
        read_manifest(folder)


# -- the rule presets -----------------------------------------------------------------------------


def waveform(stride: int, field: int, adapter_layers: int = 0) -> InputSpec:
    """A wav2vec2 front end (kernels 10, 3 x4, 2 x2; strides 5, 2 x6: 320 samples, 400 seen)
    with ``adapter_layers`` stride-2 layers, or a made-up one-layer front end."""
    if (stride, field) == (320, 400):
        kernels, strides = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
    else:
        kernels, strides = (field,), (stride,)
    return InputSpec(
        kind="waveform",
        name="input_values",
        sample_rate=16000,
        frame_stride=stride * 2**adapter_layers,
        receptive_field=field,
        normalize=True,
        attention_mask=False,
        conv_kernel=kernels,
        conv_stride=strides,
        adapter_layers=adapter_layers,
        adapter_kernel=3 if adapter_layers else 0,
        adapter_stride=2 if adapter_layers else 0,
    )


def test_rule_presets_on_20_ms_frames_are_the_rules_as_written() -> None:
    for spec in (waveform(320, 400), FBANK):
        section = rule_section(spec)
        assert {n: p.windows for n, p in section.presets.items()} == RULE_WINDOWS
        assert list(section.presets) == list(PRESET_NAMES)
        assert not any(p.tuned or p.measured for p in section.presets.values())
        assert not section.presets_tuned and not section.tuned
        assert section.default_preset == "balanced" and section.defaults == BUILT_IN


@pytest.mark.parametrize(
    "spec",
    [waveform(320, 400), FBANK, waveform(320, 400, adapter_layers=1), waveform(480, 480)],
    ids=["wav2vec2", "fbank", "adapter-40ms", "30ms-frames"],
)
def test_rule_presets_fit_every_frame_geometry(spec: InputSpec) -> None:
    frame_s = spec.frame_stride / spec.sample_rate
    for name, preset in rule_section(spec).presets.items():
        w, rule = preset.windows, RULE_WINDOWS[name]
        for value, wanted in zip(w.to_dict().values(), rule.to_dict().values(), strict=True):
            assert wanted <= value < wanted + frame_s  # rounded up to whole frames
        plan = WindowPlan.from_seconds(w.left_s, w.hop_s, w.lookahead_s, spec)
        check_geometry(spec, plan)
        StreamOptions(left_s=w.left_s, hop_s=w.hop_s, lookahead_s=w.lookahead_s)


def test_the_lookahead_covers_a_wide_receptive_field() -> None:
    spec = waveform(320, 4000)  # one frame sees 250 ms: 13 frames
    presets = rule_section(spec).presets
    assert presets["fast"].windows.lookahead_s == pytest.approx(13 * 0.02)
    assert presets["accurate"].windows.lookahead_s == RULE_WINDOWS["accurate"].lookahead_s


def test_the_engine_adds_the_rule_presets_to_an_older_export(
    fixture_export: Path, tmp_path: Path
) -> None:
    folder = copy_export(fixture_export, tmp_path, None)
    manifest = read_manifest(folder)
    assert with_rule_presets(manifest).streaming == rule_section(manifest.input)
    own = StreamingSection(DEFAULTS)  # an export's section from before the presets
    kept = with_rule_presets(replace(manifest, streaming=own)).streaming
    assert kept is not None and kept.defaults == DEFAULTS and kept.default_preset is None
    assert set(kept.presets) == set(PRESET_NAMES)
    assert with_rule_presets(replace(manifest, streaming=SECTION)).streaming == SECTION
    with int8_engine(folder, StreamOptions.model_defaults()) as engine:
        for name in PRESET_NAMES:
            options = engine.stream(options=StreamOptions.model_defaults(preset=name)).options
            assert windows_of(options) == RULE_WINDOWS[name]


def test_precedence_preset_then_given_then_manifest_then_built_in() -> None:
    fields = frozenset({"left_s", "hop_s", "lookahead_s"})
    assert resolve_windows(BUILT_IN, None, fields, None) == BUILT_IN
    assert resolve_windows(BUILT_IN, None, fields, SECTION) == DEFAULTS
    given = Windows(2.0, 0.48, 0.32)  # --hop 0.48 given, the other two not
    assert resolve_windows(given, None, frozenset({"left_s", "lookahead_s"}), SECTION) == Windows(
        0.64, 0.48, 0.16
    )
    assert resolve_windows(given, "fast", frozenset(), SECTION) == FAST
    with pytest.raises(StreamConfigError, match="preset"):
        resolve_windows(BUILT_IN, "accurate", fields, SECTION)
    with pytest.raises(StreamConfigError, match="no presets"):
        resolve_windows(BUILT_IN, "fast", fields, None)


def test_server_flags_mark_what_the_manifest_fills(tmp_path: Path) -> None:
    plain = load_config(["--model", str(tmp_path)], {})
    assert plain.stream_options.from_model == {"left_s", "hop_s", "lookahead_s"}
    assert plain.stream_options.preset is None
    hop = load_config(["--model", str(tmp_path), "--hop", "0.48"], {})
    assert hop.stream_options.hop_s == 0.48
    assert hop.stream_options.from_model == {"left_s", "lookahead_s"}
    env = load_config(["--model", str(tmp_path)], {"ASR_PRESET": "fast", "ASR_GATE": "none"})
    assert env.stream_options.preset == "fast" and env.stream_options.gate is None
    with pytest.raises(ServerConfigError, match="--preset"):
        load_config(["--model", str(tmp_path), "--preset", "fast", "--left", "1.0"], {})
    with pytest.raises(ServerConfigError, match="--preset"):
        load_config(["--model", str(tmp_path), "--preset", "slow"], {})
    with pytest.raises(ServerConfigError, match="--gate"):
        load_config(["--model", str(tmp_path), "--gate", "loud"], {})


def test_start_names_a_preset_and_a_gate() -> None:
    start = parse_text('{"type":"start","sample_rate":16000,"preset":"fast","gate":"silero"}')
    assert isinstance(start, StartMessage)
    options = start.stream_options(ServerConfig(model="m").stream_options)
    assert options.preset == "fast"
    assert options.gate == VadGateConfig()
    none = parse_text('{"type":"start","sample_rate":16000,"gate":"none"}')
    assert isinstance(none, StartMessage) and none.stream_options(StreamOptions()).gate is None
    for bad in ('"preset":"slow"', '"preset":1', '"gate":"loud"'):
        with pytest.raises(InvalidFieldError):
            parse_text('{"type":"start","sample_rate":16000,' + bad + "}")


# -- the engine -----------------------------------------------------------------------------------


def copy_export(export: Path, tmp_path: Path, section: StreamingSection | None) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(export, folder, ignore=shutil.ignore_patterns("model.fp16.*", "model.fp32.*"))
    manifest = read_manifest(folder)
    write_manifest(replace(manifest, streaming=section), folder)
    return folder


def int8_engine(folder: Path, stream: StreamOptions | None = None) -> Engine:
    runtime = RuntimeConfig(device="cpu", precision="int8")
    return Engine(folder, EngineConfig(runtime, stream=stream))


def test_engine_streams_take_the_manifest_windows(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    server = load_config(["--model", str(folder)], {}).stream_options
    with int8_engine(folder, server) as engine:
        assert windows_of(engine.stream().options) == DEFAULTS
        assert windows_of(engine.stream(options=server).options) == DEFAULTS
        fast = replace(server, preset="fast")
        assert windows_of(engine.stream(options=fast).options) == FAST
        # a library caller's explicit options stay as given
        assert windows_of(engine.stream(options=StreamOptions()).options) == BUILT_IN
        with pytest.raises(StreamConfigError, match="preset"):
            engine.stream(options=replace(server, preset="accurate"))


def test_engine_without_a_section_keeps_the_built_in_windows(
    fixture_export: Path, tmp_path: Path
) -> None:
    folder = copy_export(fixture_export, tmp_path, None)
    with int8_engine(folder) as engine:
        assert windows_of(engine.stream().options) == BUILT_IN
        # the server's default gate too: Silero, which this export carries
        assert engine.stream().options.gate == VadGateConfig(fallback_energy=True)
        assert isinstance(engine.stream(options=StreamOptions()).options.gate, GateConfig)


def test_an_unknown_server_preset_fails_the_load(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    with pytest.raises(StreamConfigError, match="accurate"):
        int8_engine(folder, StreamOptions.model_defaults(preset="accurate"))


# -- over the wire --------------------------------------------------------------------------------


def hops_of(partials: list[dict[str, object]], windows: Windows) -> bool:
    """Whether every partial's ``audio_end`` is a window end of these windows: k hops plus the
    lookahead plus the 5 ms overhang of the fixture's receptive field."""
    ends = [float(str(p["audio_end"])) for p in partials]
    ks = [(end - windows.lookahead_s - 0.005) / windows.hop_s for end in ends]
    return bool(ends) and all(abs(k - round(k)) * windows.hop_s < 0.002 for k in ks)


def test_sessions_get_the_manifest_windows_or_their_preset(
    fixture_export: Path, tmp_path: Path, tts_set: list[tuple[Path, str]]
) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    audio, rate = read_mono(tts_set[1][0])
    speech = np.concatenate([audio, audio])
    config = server_config(folder, precision="int8")
    with ServerThread(config) as server:
        health = http_get(server.port, "/healthz").json()
        assert health["presets"] == ["fast", "balanced"] and health["preset"] == "balanced"
        plain = server.call(stream_v1(server.ws_url(), speech, rate))
        fast = server.call(stream_v1(server.ws_url(), speech, rate, preset="fast"))
        missing = server.call(stream_v1(server.ws_url(), speech, rate, preset="accurate"))
    assert hops_of(plain.of("partial"), DEFAULTS) and not hops_of(plain.of("partial"), FAST)
    assert hops_of(fast.of("partial"), FAST) and not hops_of(fast.of("partial"), DEFAULTS)
    assert plain.text and fast.text
    error = missing.error
    assert error is not None and error["code"] == "invalid_field" and missing.code == 1007
    assert "preset" in str(error["message"])


def test_server_preset_flag_is_the_sessions_default(fixture_export: Path, tmp_path: Path) -> None:
    folder = copy_export(fixture_export, tmp_path, SECTION)
    config = server_config(folder, precision="int8", preset="fast")
    with ServerThread(config) as server:
        assert http_get(server.port, "/healthz").json()["preset"] == "fast"
        engine = server.engine
        assert windows_of(engine.stream(options=config.stream_options).options) == FAST


def test_a_fresh_export_serves_every_preset(
    fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    raw = json.loads((fixture_export / "manifest.json").read_text())["streaming"]
    assert [raw["presets"][n]["tuned"] for n in PRESET_NAMES] == [False] * 3
    assert raw["defaults"]["preset"] == "balanced"
    audio, rate = read_mono(tts_set[1][0])
    speech = np.concatenate([audio, audio])
    with ServerThread(server_config(fixture_export, precision="int8")) as server:
        health = http_get(server.port, "/healthz").json()
        outcomes = {
            name: server.call(stream_v1(server.ws_url(), speech, rate, preset=name))
            for name in PRESET_NAMES
        }
    assert health["presets"] == list(PRESET_NAMES) and health["preset"] == "balanced"
    assert health["presets_tuned"] is False
    for name, outcome in outcomes.items():
        assert outcome.error is None and outcome.text
        partials = outcome.of("partial")
        for other, windows in RULE_WINDOWS.items():
            assert hops_of(partials, windows) == (other == name), (name, other)
