"""``python -m bench tune``: the rules that pick the presets, and the manifest it writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.stream import tune
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.manifest import read_manifest
from streamasr.server.options.presets import PRESET_NAMES, Windows
from streamasr.server.options.stream import StreamOptions

from .service_util import ServerThread, http_get, server_config


def point(hop: float, wer: float, p95: float, compute: float) -> tune.Point:
    return tune.Point(Windows(0.32, hop, 0.16), wer, p95 / 2, p95, compute)


def test_rules_pick_each_preset() -> None:
    offline = 0.10  # bound 1.05x + 0.3 pt = 0.108
    points = [
        point(0.32, 0.130, 0.45, 3.0),  # fast enough, worst WER
        point(0.48, 0.120, 0.55, 2.0),  # fast enough, better WER: fast
        point(0.64, 0.107, 0.80, 1.7),  # within the bound but over the compute budget
        point(1.00, 0.106, 0.95, 1.5),  # within bound, compute and latency: balanced
        point(1.28, 0.104, 1.10, 1.4),  # over the latency budget
        point(2.00, 0.101, 1.80, 1.3),  # the lowest WER: accurate
    ]
    chosen = tune.pick(points, offline, tune.Budgets(compute=1.6, latency_p95=1.0))
    assert chosen["fast"] is points[1]
    assert chosen["balanced"] is points[3]
    assert chosen["accurate"] is points[5]
    # without a point inside the latency budget, balanced takes the fastest within WER/compute
    relaxed = tune.pick(points, offline, tune.Budgets(compute=1.6, latency_p95=0.5))
    assert relaxed["balanced"] is points[3]
    # nothing under the fast target: the lowest p95
    slow = [p for p in points if p.word_p95 > tune.FAST_P95_S]
    assert tune.pick(slow, offline, tune.Budgets())["fast"] is points[2]


def test_rules_are_printed_with_their_numbers() -> None:
    text = tune.rules(0.2, tune.Budgets(1.6, 1.0))
    assert set(text) == set(PRESET_NAMES)
    assert "0.2130" in text["balanced"] and "1.6x" in text["balanced"]
    assert "0.2040" in text["accurate"]


def test_tune_writes_defaults_and_presets_the_server_uses(
    fixture_export: Path, tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(fixture_export, folder, ignore=shutil.ignore_patterns("model.fp16.*"))
    speech = shared_dir / "speech" / "dev" / "tts"
    before = read_manifest(folder).streaming
    assert before is not None and not before.presets_tuned  # the export's rule presets
    argv = ["--model", str(folder), "--speech", str(speech), "--grid", "quick"]
    assert tune.main([*argv, "--limit", "2", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Rules:" in printed and "| fast" in printed and "wrote the streaming section" in printed
    section = read_manifest(folder).streaming
    assert section is not None and set(section.presets) == set(PRESET_NAMES)
    assert section.presets_tuned
    assert section.default_preset == "balanced"
    assert section.defaults == section.presets["balanced"].windows
    grid = {Windows(left, hop, look) for hop, left, look in tune.QUICK_TUNE_GRID}
    for preset in section.presets.values():
        assert preset.windows in grid
        assert {"word_p95_s", "wer", "offline_wer", "compute_x", "cpu_x"} <= set(preset.measured)
    assert section.tuned["utterances"] == 2 and section.tuned["rules"]["fast"]
    runtime = RuntimeConfig(device="cpu", precision="int8")
    with Engine(folder, EngineConfig(runtime)) as engine:
        opened = engine.stream().options
        assert Windows(opened.left_s, opened.hop_s, opened.lookahead_s) == section.defaults
        fast = engine.stream(options=StreamOptions.model_defaults(preset="fast")).options
        assert Windows(fast.left_s, fast.hop_s, fast.lookahead_s) == section.presets["fast"].windows
    with ServerThread(server_config(folder, precision="int8")) as server:
        health = http_get(server.port, "/healthz").json()
    assert health["presets"] == list(PRESET_NAMES) and health["presets_tuned"] is True
