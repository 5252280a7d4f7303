"""Per-model streaming defaults and latency presets: the manifest's optional ``streaming`` section.

``python -m bench tune`` measures a model's latency/accuracy/compute grid on the user's audio and
writes the winner as the model's window defaults, and three measured points as the presets a
client names in ``start`` (``"preset": "fast"``) or the server with ``--preset``. ``asr-export``
writes presets built by rules from the model's frame geometry, marked ``"tuned": false``
(:mod:`.preset_rules`), which tuning replaces. A manifest without the section is valid: the
built-in defaults apply, and the engine adds the rule presets.

Window precedence, first that applies: the session's ``preset``; the server's ``--preset`` or its
explicit ``--left/--hop/--lookahead`` flags (each flag on its own); the manifest's defaults; the
built-in defaults (:data:`~.stream.DEFAULT_LEFT_S` ...).

Plain Python (no numpy) so that the exporter, the server and the benchmarks share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamasr.server.errors import StreamConfigError

PRESET_NAMES = ("fast", "balanced", "accurate")
"""The presets the tuning command writes; a manifest may hold any subset."""
WINDOW_FIELDS = ("left_s", "hop_s", "lookahead_s")


@dataclass(frozen=True)
class Windows:
    """Left context, hop and lookahead of a stream's windows, in seconds."""

    left_s: float
    hop_s: float
    lookahead_s: float

    def to_dict(self) -> dict[str, float]:
        return {"left_s": self.left_s, "hop_s": self.hop_s, "lookahead_s": self.lookahead_s}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Windows:
        return cls(*(_seconds(raw, name) for name in WINDOW_FIELDS))

    def label(self) -> str:
        return f"L={self.left_s:g} C={self.hop_s:g} R={self.lookahead_s:g}"


@dataclass(frozen=True)
class Preset:
    """A point of the model's grid: measured by tuning, or built by the rules."""

    windows: Windows
    measured: Mapping[str, float] = field(default_factory=dict)
    """What the tuning run measured there: ``word_p50_s``, ``word_p95_s`` (end of a word's audio
    to the first partial showing it, one real-time stream), ``wer``, ``offline_wer`` and
    ``compute_x`` (model input per audio sample; offline is 1.0)."""
    tuned: bool = True
    """False for the rule presets ``asr-export`` writes (nothing measured); a manifest without
    the flag is read as tuned (only ``python -m bench tune`` wrote presets before it)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.windows.to_dict(), "measured": dict(self.measured), "tuned": self.tuned}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Preset:
        measured = {str(k): float(v) for k, v in dict(raw.get("measured", {})).items()}
        tuned = raw.get("tuned", True)
        if not isinstance(tuned, bool):
            raise ValueError(f"preset tuned {tuned!r} is not true or false")
        return cls(Windows.from_dict(raw), measured, tuned)


@dataclass(frozen=True)
class StreamingSection:
    """The manifest's ``streaming`` section."""

    defaults: Windows
    """Windows of a session that names no preset (and a server given no window flag)."""
    default_preset: str | None = None
    """The preset the defaults were taken from, if any (``/healthz`` shows it)."""
    presets: Mapping[str, Preset] = field(default_factory=dict)
    tuned: Mapping[str, Any] = field(default_factory=dict)
    """How the figures were obtained (speech folder, utterances, rule, budgets, date); empty when
    ``asr-export`` wrote the built-in defaults."""

    @property
    def presets_tuned(self) -> bool:
        """Whether every preset was measured (False without presets)."""
        return bool(self.presets) and all(p.tuned for p in self.presets.values())

    def preset(self, name: str) -> Preset:
        """The named preset; :class:`StreamConfigError` (``invalid_field``) when absent."""
        found = self.presets.get(name)
        if found is None:
            names = ", ".join(sorted(self.presets)) or "none: run python -m bench tune"
            raise StreamConfigError("preset", name, f"this model's presets: {names}")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "defaults": {**self.defaults.to_dict(), "preset": self.default_preset},
            "presets": {name: p.to_dict() for name, p in self.presets.items()},
            "tuned": dict(self.tuned),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StreamingSection:
        defaults = dict(raw["defaults"])
        preset = defaults.get("preset")
        presets = {str(k): Preset.from_dict(v) for k, v in dict(raw.get("presets", {})).items()}
        if preset is not None and str(preset) not in presets:
            raise ValueError(f"streaming.defaults.preset {preset!r} is not among the presets")
        return cls(
            Windows.from_dict(defaults),
            None if preset is None else str(preset),
            presets,
            dict(raw.get("tuned", {})),
        )


def _seconds(raw: Mapping[str, Any], name: str) -> float:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 8:
        raise ValueError(f"{name} {value!r} is not a number of seconds from 0 to 8")
    return float(value)


def resolve_windows(
    current: Windows,
    preset: str | None,
    from_model: frozenset[str],
    section: StreamingSection | None,
) -> Windows:
    """A stream's windows (see the module docstring): a named ``preset``'s; else ``current``
    with the fields in ``from_model`` taken from the manifest's defaults (without a
    ``streaming`` section ``current`` stands: it holds the built-in values)."""
    if preset is not None:
        if section is None:
            raise StreamConfigError("preset", preset, "this model has no presets")
        return section.preset(preset).windows
    if section is None:
        return current
    values = current.to_dict()
    values.update({name: section.defaults.to_dict()[name] for name in from_model})
    return Windows.from_dict(values)
