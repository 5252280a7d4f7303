"""Which CTC decoder a stream gets: greedy, or beam search with an LM and/or hotwords.

Three layers of settings, each overriding the one before: the model's manifest (its optional
``decoder`` section, :class:`~.manifest.DecoderSection`), the server's flags (``--lm``,
``--beam-width``, ``--lm-weight``, ``--word-score``, ``--hotwords``, ``--hotword-weight``) and a
session's own :class:`DecodingOptions` (from the v1 ``start`` message or the Vosk
``phrase_list``), each bounded. Without an LM and without hotwords a stream decodes greedily;
with hotwords but no LM it runs the beam search with hotword boosting alone.

:class:`Decoders` is the engine's part: it loads the LM once, reads the server's hotword file in
the model's alphabet, makes each stream's decoder and owns the small thread pool that runs beam
search off the event loop (each stream has at most one window in it at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from .clientjson import JsonObject
from .decoder import CtcDecoder, GreedyCtcDecoder
from .errors import InvalidFieldError, StreamConfigError, echo
from .hotwords import (
    DEFAULT_HOTWORD_WEIGHT,
    MAX_HOTWORD_CHARS,
    MAX_HOTWORDS,
    Alphabet,
    Hotword,
    HotwordTrie,
    check_weight,
    make_hotwords,
    read_hotwords_file,
)
from .lm_decoder import BeamCtcDecoder, BeamSettings
from .lm_scorer import WordLm
from .manifest import DecoderSection, Manifest

log = logging.getLogger(__name__)

MAX_SESSION_BEAM = 64
"""Widest beam a session may ask for."""
DECODE_THREADS = 2
"""Threads running beam search for all streams of an engine."""


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

    def __post_init__(self) -> None:
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


def parse_decoding(data: JsonObject) -> DecodingOptions | None:
    """The decoding fields of a ``start`` message, typed and bounded (InvalidFieldError)."""
    if not any(name in data for name in DECODING_FIELDS):
        return None
    beam = data.get("beam_width")
    if beam is not None and (not isinstance(beam, int) or isinstance(beam, bool)):
        raise InvalidFieldError("beam_width", f"{echo(beam)} is not an integer")
    numbers = {name: _number(data, name) for name in ("lm_weight", "word_score", "hotword_weight")}
    try:
        return DecodingOptions(
            beam_width=beam,
            hotwords=parse_phrases(data.get("hotwords"), "hotwords"),
            **numbers,
        )
    except StreamConfigError as exc:
        raise InvalidFieldError(exc.option, str(exc)) from None


def parse_phrases(value: object, name: str) -> tuple[str, ...]:
    """A JSON list of at most 100 strings (phrases to boost); None: none."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidFieldError(name, "is not a list of strings")
    if len(value) > MAX_HOTWORDS:
        raise InvalidFieldError(name, f"{len(value)} phrases: at most {MAX_HOTWORDS}")
    return tuple(value)


def _number(data: JsonObject, name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFieldError(name, f"{echo(value)} is not a number")
    return float(value)


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


class Decoders:
    """Makes the decoder of each stream of one model."""

    def __init__(self, manifest: Manifest, folder: Path, settings: DecoderSettings) -> None:
        self.vocab = manifest.vocabulary
        spec = manifest.input
        self.frame_seconds = spec.frame_stride / spec.sample_rate
        self.alphabet = Alphabet.of(self.vocab)
        section = manifest.decoder
        lm_path = settings.lm or (folder / section.lm if section and section.lm else None)
        self.beam = beam_settings(settings, section)
        self.hotword_weight = settings.hotword_weight
        self.hotwords: tuple[Hotword, ...] = ()
        if settings.hotwords is not None:
            self.hotwords = read_hotwords_file(
                settings.hotwords, self.alphabet, settings.hotword_weight
            )
        self.word_lm = WordLm(lm_path) if lm_path is not None else None
        if self.word_lm is not None or self.hotwords:
            BeamCtcDecoder(self.vocab, self.frame_seconds, self.beam)  # fail now if no extra
            log.info(
                "beam search: lm %s, beam %d, lm weight %g, word score %g, %d hotwords",
                lm_path or "none",
                self.beam.beam_width,
                self.beam.lm_weight,
                self.beam.word_score,
                len(self.hotwords),
            )
        self._pool: ThreadPoolExecutor | None = None

    @property
    def beam_search(self) -> bool:
        """Whether streams without overrides get the beam search."""
        return self.word_lm is not None or bool(self.hotwords)

    def make(self, options: DecodingOptions | None = None) -> CtcDecoder:
        """A new stream's decoder (raises StreamConfigError for a session's bad hotwords)."""
        options = options or DecodingOptions()
        weight = self.hotword_weight if options.hotword_weight is None else options.hotword_weight
        own = make_hotwords(options.hotwords, self.alphabet, weight)
        phrases = {h.phrase: h for h in self.hotwords} | {h.phrase: h for h in own}
        if self.word_lm is None and not phrases:
            return GreedyCtcDecoder(self.vocab, self.frame_seconds)
        trie = HotwordTrie(phrases.values(), self.vocab)
        beam = replaced(self.beam, options)
        decoder = BeamCtcDecoder(self.vocab, self.frame_seconds, beam, self.word_lm, trie)
        decoder.executor = self.executor
        return decoder

    @property
    def executor(self) -> Executor:
        """The pool beam search runs in (started on first use)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="asr-decode")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


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


def replaced(beam: BeamSettings, options: DecodingOptions) -> BeamSettings:
    """``beam`` with a session's overrides."""
    changes = {
        name: value
        for name in ("beam_width", "lm_weight", "word_score")
        if (value := getattr(options, name)) is not None
    }
    return replace(beam, **changes) if changes else beam


def stream_decoder(
    decoders: Decoders | None, manifest: Manifest, options: DecodingOptions | None
) -> CtcDecoder:
    """A stream's decoder: the engine's choice, or greedy without an engine's :class:`Decoders`."""
    if decoders is None:
        spec = manifest.input
        return GreedyCtcDecoder(manifest.vocabulary, spec.frame_stride / spec.sample_rate)
    return decoders.make(options)


_T = TypeVar("_T")
_R = TypeVar("_R")


async def complete_off_loop(decoder: object, complete: Callable[[_T], _R], item: _T) -> _R:
    """``complete(item)``, in the decoder's executor when it has one (beam search: CPU work per
    window), else inline (greedy: cheaper than a thread hop). The stream awaits it before its
    next window, so each stream has at most one window in the pool."""
    executor: Executor | None = getattr(decoder, "executor", None)
    if executor is None:
        return complete(item)
    return await asyncio.get_running_loop().run_in_executor(executor, complete, item)
