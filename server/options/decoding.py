"""Decoding settings: a session's overrides, the server's flags, the beam search's weights and the
hotword bounds (plain Python; the decoders are in :mod:`streamasr.server.decoding`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from streamasr.server.errors import StreamConfigError
from streamasr.server.options.ranges import check_range

if TYPE_CHECKING:
    from streamasr.server.manifest import DecoderSection

MAX_SESSION_BEAM = 64
"""Widest beam a session may ask for."""
MAX_HOTWORDS = 100
"""Most hotwords one session may list (``start``'s ``hotwords``, Vosk ``phrase_list``)."""
MAX_HOTWORD_CHARS = 50
"""Longest hotword phrase, in characters after normalisation."""
MAX_HOTWORD_WEIGHT = 20.0
DEFAULT_HOTWORD_WEIGHT = 1.5
"""Bonus per symbol of a completed hotword (natural log), chosen on the fixture (docs/lm.md)."""
DEFAULT_BEAM_WIDTH = 16
DEFAULT_LM_WEIGHT = 0.5
DEFAULT_WORD_SCORE = 1.0
DEFAULT_UNK_SCORE = -10.0
"""Defaults chosen on the fixture (docs/lm.md): natural-log units."""
MAX_BEAM_WIDTH = 128
MAX_ALTERNATIVES = 100
"""Most n-best alternatives a session may ask for (Vosk's ``max_alternatives`` is capped here)."""


@dataclass(frozen=True)
class DecodingOptions:
    """A session's overrides (None: the server's setting)."""

    beam_width: int | None = None
    """1 to 64."""
    lm_weight: float | None = None
    word_score: float | None = None
    hotwords: tuple[str, ...] = ()
    """Phrases to boost (at most 100 of at most 50 characters), added to the server's."""
    hotword_weight: float | None = None
    """Bonus per symbol of this session's hotwords (0 to 20)."""
    alternatives: int = 0
    """How many distinct texts (n-best) each final keeps, 0 to 100: above 1, the beam search
    gathers them from its surviving beams at the segment's end (at most the beam width); 0 or
    1, and greedy decoding always, keep the best path alone. It does not pick the decoder."""

    def __post_init__(self) -> None:
        check_range("alternatives", self.alternatives, 0, MAX_ALTERNATIVES)
        if self.beam_width is not None and not 1 <= self.beam_width <= MAX_SESSION_BEAM:
            raise StreamConfigError("beam_width", self.beam_width, f"1 to {MAX_SESSION_BEAM}")
        if len(self.hotwords) > MAX_HOTWORDS:
            raise StreamConfigError("hotwords", len(self.hotwords), f"at most {MAX_HOTWORDS}")
        for phrase in self.hotwords:
            if len(phrase.strip()) > MAX_HOTWORD_CHARS:
                raise StreamConfigError("hotwords", phrase, f"at most {MAX_HOTWORD_CHARS} chars")
        if self.hotword_weight is not None:
            check_weight("hotword_weight", self.hotword_weight)
        replaced(BeamSettings(), self)  # checks the weights' ranges

    @property
    def empty(self) -> bool:
        return self == DecodingOptions()


DECODING_FIELDS = ("hotwords", "hotword_weight", "beam_width", "lm_weight", "word_score")
"""Fields of the v1 ``start`` message read by :func:`parse_decoding`."""


@dataclass(frozen=True)
class DecoderSettings:
    """The server's decoding settings (flags and environment); None: the manifest's, then the
    defaults."""

    lm: Path | None = None
    beam_width: int | None = None
    lm_weight: float | None = None
    word_score: float | None = None
    hotwords: Path | None = None
    """File of phrases, one a line (``PHRASE<TAB>WEIGHT`` for its own weight)."""
    hotword_weight: float = DEFAULT_HOTWORD_WEIGHT

    def __post_init__(self) -> None:
        beam_settings(self, None)  # raises StreamConfigError out of range
        check_weight("hotword_weight", self.hotword_weight)


def replaced(beam: BeamSettings, options: DecodingOptions) -> BeamSettings:
    """``beam`` with a session's overrides."""
    changes = {
        name: value
        for name in ("beam_width", "lm_weight", "word_score")
        if (value := getattr(options, name)) is not None
    }
    return replace(beam, **changes) if changes else beam


def check_weight(name: str, weight: float) -> float:
    if not 0.0 <= weight <= MAX_HOTWORD_WEIGHT:
        raise StreamConfigError(name, weight, f"0 to {MAX_HOTWORD_WEIGHT:g}")
    return float(weight)


@dataclass(frozen=True)
class BeamSettings:
    """How the beam search weighs its paths."""

    beam_width: int = DEFAULT_BEAM_WIDTH
    """Beams kept per frame (1 to 128)."""
    lm_weight: float = DEFAULT_LM_WEIGHT
    """Weight of the LM's natural-log probabilities (0 to 5)."""
    word_score: float = DEFAULT_WORD_SCORE
    """Added per word (-10 to 10): larger favours more, shorter words."""
    unk_score: float = DEFAULT_UNK_SCORE
    """Added per word the LM does not know (hotwords exempt)."""

    def __post_init__(self) -> None:
        check_range("beam_width", self.beam_width, 1, MAX_BEAM_WIDTH)
        check_range("lm_weight", self.lm_weight, 0.0, 5.0)
        check_range("word_score", self.word_score, -10.0, 10.0)
        check_range("unk_score", self.unk_score, -100.0, 0.0)

    @property
    def weights(self) -> Weights:
        return Weights(self.lm_weight, self.word_score, self.unk_score)


@dataclass(frozen=True)
class Weights:
    """The scorer's weights (natural-log units)."""

    lm_weight: float
    word_score: float
    unk_score: float


def beam_settings(settings: DecoderSettings, section: DecoderSection | None) -> BeamSettings:
    """The flags' beam settings, else the manifest's, else the defaults."""
    values: dict[str, float] = {}
    for name in ("beam_width", "lm_weight", "word_score"):
        value = getattr(settings, name)
        if value is None and section is not None:
            value = getattr(section, name)
        if value is not None:
            values[name] = value
    return BeamSettings(**values)  # type: ignore[arg-type]
