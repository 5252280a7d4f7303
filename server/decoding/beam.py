"""Streamed CTC beam search with a word n-gram LM and hotwords (a :class:`~.decoder.CtcDecoder`).

The search is flashlight-text's lexicon-free CTC decoder (C++); the LM and hotword scores come
from :class:`~.lm_scorer.ContextScorer`. Why flashlight-text and not pyctcdecode, measured on the
fixture (docs/lm.md): flashlight decodes incrementally (``decode_begin`` / ``decode_step`` per
block of frames / ``decode_end``, beams kept in the decoder between blocks; decoding the same
logits whole or in blocks of 7 or 50 frames gives the same text), which a stream needs and
pyctcdecode lacks (``decode_beams`` restarts its beams on every call: a stream would re-decode
its whole segment per window, or fork its private loop); and it has no dependencies, where
pyctcdecode 0.5 pins ``numpy<2``, which this project's numpy 2 cannot take. pyctcdecode was
faster offline on the fixture (0.0024 against 0.0113 CPU s per audio s at beam 16, same LM, in
one run) and a little more accurate (WER 0.278 against 0.300): our scorer runs in Python for
every symbol flashlight tries. So a frame's symbols below :data:`TOKEN_MIN_LOGP` are refused
before any lookup and at most :data:`TOKEN_BEAM` are tried (0.0057 CPU s per audio s now).

Across windows: each window's kept frames are decoded into the beams of the segment (they are
never decoded again). The *committed* text is the longest run of whole words on which every
surviving beam agrees: every later beam extends one of them, so that text can no longer change.
The provisional tail is the best beam's remaining text plus the greedy reading of the window's
lookahead frames. A window's first kept frames are blended with the previous window's
lookahead view of them (:class:`LookaheadBlend`). At the end of a segment (an endpoint) the
LM's end-of-sentence score is added and the best beam becomes the segment; its frame alignment
gives each word's start and end, and the mean softmax probability of the path's symbols on the
word's letter frames its confidence.

N-best (``nbest`` above 1, Vosk's ``max_alternatives``): the same surviving beams, after the
end-of-sentence score, give the segment's alternatives: one per distinct text, in the order of
each text's best beam (so the first is the segment's text), each with a softmax of those best
scores over all the distinct texts as its confidence and the words of its own best beam, timed
by that beam's own alignment (every beam carries its frame path, so no alternative borrows the
best path's timings). Empty texts count in the softmax but are not listed.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.arrays import Logits
from streamasr.server.decoding.ctc import greedy_ids, ids_to_text
from streamasr.server.decoding.greedy import DecodedSegment, letter_ids
from streamasr.server.decoding.hotwords import HotwordTrie
from streamasr.server.decoding.scorer import WordLm, load_flashlight, make_scorer
from streamasr.server.events import Alternative, Hypothesis, Word
from streamasr.server.manifest import Vocabulary
from streamasr.server.options.decoding import BeamSettings
from streamasr.server.options.presets import StreamingSection, Windows, resolve_windows

if TYPE_CHECKING:
    from streamasr.server.options.stream import StreamOptions

TOKEN_BEAM = 6
"""Symbols tried per frame and beam: the most probable ones (docs/lm.md: 8 cost 2x for the
same words on the fixture)."""
BEAM_THRESHOLD = 25.0
"""Beams scoring this far (natural log) below the best are dropped."""
TOKEN_MIN_LOGP = -6.0
"""A frame's symbols less probable than this (natural log) are not tried, except its best."""


LM_WINDOWS = Windows(left_s=0.64, hop_s=2.0, lookahead_s=0.64)
"""Window defaults of a stream decoded with an n-gram LM (docs/lm.md): at the model's default
windows the short contexts cost the beam search more words than greedy decoding; these meet
the streaming bound on the fixture at 1.46x offline model input (against 1.55x), for partials
every 2 s instead of every 1 s. A preset or an explicit window flag still wins."""


def log_softmax(logits: Logits) -> NDArray[np.float32]:
    x = logits.astype(np.float32, copy=False)
    peak = x.max(axis=-1, keepdims=True)
    shifted = x - peak
    out = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return np.ascontiguousarray(out, dtype=np.float32)


class LookaheadBlend:
    """A window's lookahead frames are the next window's first kept frames, seen with little
    right context (the lookahead ends at the window's edge) where the next window sees them
    with little left context. Each kept frame that a lookahead also saw is decoded from the
    average of the two views' log probabilities, each view weighted by the context on its
    weaker side (1 + frames to the nearer edge of its window): a view's error falls roughly as
    the inverse of that context (docs/lm.md). The result is renormalised; it is decoded once,
    when the kept frame arrives, so the blend adds no delay."""

    def __init__(self, left: int, hop: int) -> None:
        self.left = left
        self.hop = hop
        self._start = 0
        """Global index of the stored lookahead's first frame."""
        self._ahead: NDArray[np.float32] | None = None

    def ahead(self, frame: int, logp: NDArray[np.float32]) -> None:
        """Store a window's lookahead log probabilities (first frame: global ``frame``)."""
        self._start, self._ahead = frame, logp

    def kept(self, frame: int, logp: NDArray[np.float32]) -> NDArray[np.float32]:
        """``logp`` (kept frames from global ``frame``) blended with the stored lookahead."""
        ahead = self._ahead
        offset = frame - self._start
        if ahead is None or not 0 <= offset < ahead.shape[0]:
            return logp
        n = min(ahead.shape[0] - offset, logp.shape[0])
        position = np.arange(offset, offset + n, dtype=np.float32)[:, None]
        span = ahead.shape[0]
        weight_ahead = span - position
        weight_kept = np.minimum(self.left + position, self.hop + span - 1 - position) + 1
        mixed = (weight_kept * logp[:n] + weight_ahead * ahead[offset : offset + n]) / (
            weight_kept + weight_ahead
        )
        return np.concatenate([log_softmax(mixed), logp[n:]])


class BeamCtcDecoder:
    """A stream's beam search; one flashlight decoder per stream, restarted per segment."""

    def __init__(
        self,
        vocab: Vocabulary,
        frame_seconds: float,
        settings: BeamSettings,
        word_lm: WordLm | None = None,
        hotwords: HotwordTrie | None = None,
        *,
        nbest: int = 1,
    ) -> None:
        fl = load_flashlight()
        self.nbest = nbest
        """Distinct texts each segment keeps (1: the best alone, no alternatives)."""
        self.executor: Executor | None = None
        """Where the stream runs :meth:`advance` (CPU work per window) off its event loop."""
        self.vocab = vocab
        self.frame_seconds = frame_seconds
        self.settings = settings
        self._hotwords = hotwords or HotwordTrie((), vocab)
        self._scorer = make_scorer(vocab, word_lm, settings.weights, self._hotwords)
        options = fl.LexiconFreeDecoderOptions(
            beam_size=settings.beam_width,
            beam_size_token=min(TOKEN_BEAM, len(vocab.tokens)),
            beam_threshold=BEAM_THRESHOLD,
            lm_weight=1.0,
            sil_score=0.0,
            log_add=False,
            criterion_type=fl.CriterionType.CTC,
        )
        delimiter = vocab.word_delimiter_id
        self._decoder = fl.LexiconFreeDecoder(
            options, self._scorer, -1 if delimiter is None else delimiter, vocab.blank_id, []
        )
        self._text_ids = letter_ids(vocab)
        self._frame = 0
        """Global index of the next frame."""
        self._blend: LookaheadBlend | None = None
        self.cpu_s = 0.0
        """CPU seconds this decoder has spent (its thread's), for the benchmarks."""
        self._begin()

    @property
    def has_lm(self) -> bool:
        """Whether a word LM scores the paths (else hotwords alone)."""
        return self._scorer.word_lm is not None

    def set_windows(self, windows: Windows) -> None:
        """The stream's windows: from then on each window's first kept frames are blended with
        the previous window's lookahead view of the same audio (:class:`LookaheadBlend`; an
        offline stream has no lookahead, so nothing to blend)."""
        frames = [round(s / self.frame_seconds) for s in (windows.left_s, windows.hop_s)]
        self._blend = LookaheadBlend(*frames)

    def _begin(self) -> None:
        self._decoder.decode_begin()
        self._segment_start = self._frame
        self._logp: list[NDArray[np.float32]] = []
        self._committed: list[int] = []
        self._committed_text = ""

    def advance(self, kept: Logits, lookahead: Logits) -> Hypothesis:
        started = time.thread_time()
        try:
            return self._advance(kept, lookahead)
        finally:
            self.cpu_s += time.thread_time() - started

    def end_segment(self) -> DecodedSegment:
        started = time.thread_time()
        self._decoder.decode_end()
        ranked = self._ranked()
        segment = DecodedSegment("", ())
        if ranked:
            path = ranked[0].tokens
            text = ids_to_text(self._symbols(path), self.vocab)
            words = tuple(self._words(path))
            alternatives = self._alternatives(ranked, words) if text and self.nbest > 1 else ()
            segment = DecodedSegment(text, words, alternatives)
        self._begin()
        self.cpu_s += time.thread_time() - started
        return segment

    # -- steps ------------------------------------------------------------------------------------

    def _advance(self, kept: Logits, lookahead: Logits) -> Hypothesis:
        if kept.shape[0]:
            logp = log_softmax(kept)
            if self._blend is not None:
                logp = self._blend.kept(self._frame, logp)
            self._decode(logp)
            self._logp.append(logp)
            self._frame += kept.shape[0]
        if self._blend is not None and lookahead.shape[0]:
            self._blend.ahead(self._frame, log_softmax(lookahead))
        paths = [self._symbols(h.tokens) for h in self._ranked()]
        if not paths:
            return Hypothesis(self._committed_text, "")
        self._commit(paths)
        best = paths[0]
        tail = self._greedy_tail(best, lookahead)
        full = ids_to_text(best + tail, self.vocab)
        return Hypothesis(self._committed_text, full[len(self._committed_text) :])

    def _decode(self, logp: NDArray[np.float32]) -> None:
        """Feed frames to the search, each run of frames with the same plausible symbols in one
        step: a frame's symbols below :data:`TOKEN_MIN_LOGP` (except its best) are not
        extended (per-frame pruning, as pyctcdecode's ``token_min_logp``)."""
        plausible = logp >= TOKEN_MIN_LOGP
        plausible[np.arange(logp.shape[0]), logp.argmax(axis=1)] = True
        row_bytes = logp.shape[1] * logp.itemsize
        start = 0
        for t in range(1, logp.shape[0] + 1):
            if t < logp.shape[0] and np.array_equal(plausible[t], plausible[start]):
                continue
            self._scorer.allowed = frozenset(np.flatnonzero(plausible[start]).tolist())
            self._decoder.decode_step(
                logp.ctypes.data + start * row_bytes, t - start, logp.shape[1]
            )
            start = t

    def _ranked(self) -> list[Any]:
        hyps = list(self._decoder.get_all_final_hypothesis())
        hyps.sort(key=lambda h: -h.score)
        return hyps

    def _alternatives(
        self, ranked: list[Any], best_words: tuple[Word, ...]
    ) -> tuple[Alternative, ...]:
        """Up to :attr:`nbest` distinct non-empty texts of ``ranked`` (best first), each with
        its softmax share of the distinct texts' best scores and its own path's words."""
        best_of: dict[str, Any] = {}
        for hyp in ranked:
            best_of.setdefault(ids_to_text(self._symbols(hyp.tokens), self.vocab), hyp)
        scores = np.array([hyp.score for hyp in best_of.values()], dtype=np.float64)
        shares = np.exp(scores - scores.max())
        shares /= shares.sum()
        alternatives: list[Alternative] = []
        for (text, hyp), share in zip(best_of.items(), shares.tolist(), strict=True):
            if len(alternatives) == self.nbest:
                break
            if text:
                words = best_words if hyp is ranked[0] else tuple(self._words(hyp.tokens))
                alternatives.append(Alternative(text, round(share, 6), words))
        return tuple(alternatives)

    def _symbols(self, tokens: Any) -> list[int]:
        """A path's emitted symbols: repeats merged, blanks and extra delimiters dropped."""
        blank, delimiter = self.vocab.blank_id, self.vocab.word_delimiter_id
        out: list[int] = []
        previous = blank
        for token in tokens:
            new = token not in (previous, blank) and token >= 0
            if new and (token != delimiter or (out and out[-1] != delimiter)):
                out.append(token)
            previous = token
        return out

    def _commit(self, paths: list[list[int]]) -> None:
        """Extend the committed words to the whole words every beam agrees on."""
        first = paths[0]
        common = len(first)
        for path in paths[1:]:
            n = 0
            limit = min(common, len(path))
            while n < limit and path[n] == first[n]:
                n += 1
            common = n
        delimiter = self.vocab.word_delimiter_id
        cut = common
        while cut > len(self._committed) and first[cut - 1] != delimiter:
            cut -= 1
        if cut > len(self._committed) and first[: len(self._committed)] == self._committed:
            self._committed = first[:cut]
            self._committed_text = ids_to_text(self._committed, self.vocab)

    def _greedy_tail(self, best: list[int], lookahead: Logits) -> list[int]:
        if lookahead.shape[0] == 0:
            return []
        previous = best[-1] if best else self.vocab.blank_id
        tail: list[int] = []
        for label in greedy_ids(lookahead).tolist():
            if label not in (self.vocab.blank_id, previous):
                tail.append(label)
            previous = label
        return tail

    def _words(self, tokens: Any) -> list[Word]:
        """Words of the chosen path with their frames and confidence."""
        if not self._logp:
            return []
        logp = np.concatenate(self._logp)
        path = list(tokens)[1 : 1 + logp.shape[0]]  # [0] is the start state's
        words: list[Word] = []
        letters: list[tuple[int, int]] = []
        for frame, token in enumerate(path):
            if token in self._text_ids:
                letters.append((frame, token))
            elif token == self.vocab.word_delimiter_id and letters:
                words.append(self._word(letters, logp))
                letters = []
        if letters:
            words.append(self._word(letters, logp))
        return words

    def _word(self, letters: list[tuple[int, int]], logp: NDArray[np.float32]) -> Word:
        spelled: list[int] = []
        last = -2
        for frame, token in letters:
            if not spelled or frame != last + 1 or token != spelled[-1]:
                spelled.append(token)
            last = frame
        frames = np.array([f for f, _ in letters])
        tokens = np.array([t for _, t in letters])
        confidence = float(np.exp(logp[frames, tokens]).mean())
        start = self._segment_start + int(frames[0])
        end = self._segment_start + int(frames[-1]) + 1
        return Word(
            text="".join(self.vocab.tokens[t] for t in spelled),
            start=round(start * self.frame_seconds, 6),
            end=round(end * self.frame_seconds, 6),
            confidence=round(min(max(confidence, 0.0), 1.0), 6),
        )


def stream_windows(
    decoder: object, options: StreamOptions, section: StreamingSection | None
) -> Windows:
    """A stream's windows (:func:`~.presets.resolve_windows`), its decoder's choice: with an LM
    and no preset, the window fields nobody chose are :data:`LM_WINDOWS`' (over the manifest's
    defaults, tuned for greedy decoding). A beam search learns them (:meth:`set_windows`)."""
    current = Windows(options.left_s, options.hop_s, options.lookahead_s)
    from_model = options.from_model
    beam = decoder if isinstance(decoder, BeamCtcDecoder) else None
    if beam is not None and beam.has_lm and options.preset is None and from_model:
        values = current.to_dict() | {n: LM_WINDOWS.to_dict()[n] for n in from_model}
        current, from_model = Windows.from_dict(values), frozenset()
    windows = resolve_windows(current, options.preset, from_model, section)
    if beam is not None:
        beam.set_windows(windows)
    return windows
