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
from pathlib import Path
from typing import TypeVar

from streamasr.server.decoding.beam import BeamCtcDecoder
from streamasr.server.decoding.greedy import CtcDecoder, GreedyCtcDecoder
from streamasr.server.decoding.hotwords import (
    Alphabet,
    Hotword,
    HotwordTrie,
    make_hotwords,
    read_hotwords_file,
)
from streamasr.server.decoding.scorer import WordLm
from streamasr.server.manifest import Manifest
from streamasr.server.options.decoding import (
    DecoderSettings,
    DecodingOptions,
    beam_settings,
    replaced,
)

log = logging.getLogger(__name__)

DECODE_THREADS = 2
"""Threads running beam search for all streams of an engine."""


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
        decoder = BeamCtcDecoder(
            self.vocab, self.frame_seconds, beam, self.word_lm, trie, nbest=options.alternatives
        )
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


async def complete_off_loop(decoder: CtcDecoder, complete: Callable[[_T], _R], item: _T) -> _R:
    """``complete(item)``, in the decoder's executor when it has one (beam search: CPU work per
    window), else inline (greedy: cheaper than a thread hop). The stream awaits it before its
    next window, so each stream has at most one window in the pool."""
    executor = decoder.executor
    if executor is None:
        return complete(item)
    return await asyncio.get_running_loop().run_in_executor(executor, complete, item)
