"""Latency presets built by rules from a model's frame geometry, for an export nobody has tuned.

``asr-export`` writes them into the manifest's ``streaming`` section, each marked
``"tuned": false``, with ``balanced`` as the defaults; ``python -m bench tune`` replaces them with
measured ones. The engine adds them when it loads an older export whose section has no presets,
so a session naming a preset works on any export.

The rules (docs/streaming.md, "Presets before tuning"): :data:`RULE_WINDOWS` holds each preset in
seconds, chosen on the fixture's measured latency/accuracy grid; for a model they are rounded up
to whole output frames (``frame_stride / sample_rate``), and the lookahead is at least the
audio one output frame sees (``receptive_field``, rounded up to frames), so that the frame after
the last kept one is complete in every window. With the wav2vec2 front end (20 ms frames, a
25 ms receptive field) the rounding changes nothing and the floor (40 ms) does not bind.
"""

from __future__ import annotations

import math
from dataclasses import replace

from streamasr.server.manifest import InputSpec, Manifest
from streamasr.server.options.presets import Preset, StreamingSection, Windows
from streamasr.server.options.stream import DEFAULT_HOP_S, DEFAULT_LEFT_S, DEFAULT_LOOKAHEAD_S

RULE_WINDOWS: dict[str, Windows] = {
    "fast": Windows(left_s=1.0, hop_s=0.32, lookahead_s=0.16),
    "balanced": Windows(DEFAULT_LEFT_S, DEFAULT_HOP_S, DEFAULT_LOOKAHEAD_S),
    "accurate": Windows(left_s=2.0, hop_s=2.0, lookahead_s=0.64),
}
"""The presets in seconds, before rounding (fixture int8 grid, docs/streaming.md):

* ``fast``: hop + lookahead 0.48 s, under the 0.6 s word-latency p95 tuning aims at; 1 s of left
  context buys back most of what the short hop loses (word p95 0.51 s, WER 0.704 against 0.836
  without it; offline 0.630), for 4.3x the offline model input.
* ``balanced``: the built-in defaults, within tuning's WER bound (1.05x offline + 0.3 pt) and
  its 1.6x compute budget (p95 1.26 s, WER 0.630, 1.55x).
* ``accurate``: the 2 s hop halves the window edges per second, where streaming errs, and the
  longest contexts of the grid at that hop give its lowest WER there (0.622, p95 2.38 s, 1.94x).
"""


def rule_windows(windows: Windows, spec: InputSpec) -> Windows:
    """``windows`` rounded up to whole output frames of ``spec``, the lookahead to at least the
    frames one frame's receptive field spans."""
    frame_s = spec.frame_stride / spec.sample_rate
    floor = math.ceil(spec.receptive_field / spec.frame_stride)

    def frames(seconds: float, least: int) -> float:
        count = max(least, math.ceil(seconds / frame_s - 1e-6))
        return round(count * frame_s, 6)

    return Windows(
        frames(windows.left_s, 0), frames(windows.hop_s, 1), frames(windows.lookahead_s, floor)
    )


def rule_section(spec: InputSpec) -> StreamingSection:
    """The ``streaming`` section ``asr-export`` writes: the rule presets (``tuned`` false) and
    ``balanced`` as the defaults."""
    presets = {
        name: Preset(rule_windows(windows, spec), tuned=False)
        for name, windows in RULE_WINDOWS.items()
    }
    return StreamingSection(presets["balanced"].windows, "balanced", presets)


def with_rule_presets(manifest: Manifest) -> Manifest:
    """``manifest``, with the rule presets when its ``streaming`` section has no presets (an
    export older than them); the section's own defaults stay."""
    section = manifest.streaming
    if section is not None and section.presets:
        return manifest
    rules = rule_section(manifest.input)
    if section is not None:
        named = rules.default_preset if section.defaults == rules.defaults else None
        rules = StreamingSection(section.defaults, named, rules.presets, section.tuned)
    return replace(manifest, streaming=rules)
