"""What the beam search adds to a path besides the acoustic score: a word n-gram LM and hotwords.

flashlight-text's lexicon-free CTC decoder asks its language model for a score each time a
hypothesis emits a new symbol. :class:`ContextScorer` is that model, written here so that one
search serves an open vocabulary, a word LM (KenLM, queried through the ``kenlm`` module) and
hotwords:

* inside a word, each letter moves the word's *lookahead* to the best unigram log probability of
  any LM word starting with the letters so far (0 before the first letter); a prefix no LM word
  has costs ``unk_score`` once;
* at the word delimiter (or the end of the segment) the lookahead is replaced by the word's
  n-gram log probability in its context, times ``lm_weight``, plus ``word_score`` (and
  ``unk_score`` for a word the LM does not know);
* while a hypothesis spells a hotword phrase each symbol earns the phrase's weight; leaving the
  phrase before its end gives the partial bonus back (:mod:`.hotwords`).

Scores are natural logarithms (KenLM's log10 converted), added to the log-softmax emissions.
A state is the flashlight ``LMState`` of a path's symbols (``state.child(symbol)``: one object per
distinct history, so paths with the same text merge); its data lives in a dict for the segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamasr.server.decoding.ctc import is_special_token
from streamasr.server.decoding.hotwords import HotwordTrie, _Node
from streamasr.server.errors import ModelFileError
from streamasr.server.manifest import Vocabulary
from streamasr.server.options.decoding import Weights

if TYPE_CHECKING:
    from flashlight.lib.text.decoder import LM, LMState
else:  # the `lm` extra is imported lazily (see :func:`load_flashlight`)
    LM = object
    LMState = Any

LN10 = math.log(10.0)
IMPOSSIBLE = -1e4
"""Score of a symbol the search must never emit (special tokens other than the blank)."""


class LmUnavailableError(ModelFileError):
    """``--lm`` (or hotwords) needs the ``lm`` extra, or the LM file cannot be read."""


def load_flashlight() -> Any:
    """flashlight-text's decoder module, or a clear error naming the extra to install."""
    try:
        from flashlight.lib.text import decoder
    except ImportError as exc:
        raise LmUnavailableError(
            "flashlight-text",
            f"beam search needs the lm extra (pip install 'streamasr[lm]'): {exc}",
        ) from None
    return decoder


class WordLm:
    """A KenLM model (ARPA or binary) and the lookahead table of its vocabulary, shared by every
    stream of an engine (read-only after loading)."""

    def __init__(self, path: Path) -> None:
        try:
            import kenlm
        except ImportError as exc:
            raise LmUnavailableError(
                path, f"an LM needs the lm extra: pip install 'streamasr[lm]' ({exc})"
            ) from None
        if not path.is_file():
            raise LmUnavailableError(path, "no such LM file")
        try:
            self.model = kenlm.Model(str(path))
        except (OSError, RuntimeError) as exc:
            raise LmUnavailableError(path, f"not a KenLM model ({exc})") from None
        self.path = path
        self.order: int = self.model.order
        self._kenlm = kenlm
        self.unigrams = read_arpa_unigrams(path)
        """log10 unigram probabilities (ARPA files; empty for a binary file: no lookahead)."""
        self.lookahead = prefix_lookahead(self.unigrams)

    def begin(self) -> Any:
        state = self._kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def score(self, state: Any, word: str) -> tuple[Any, float]:
        """Natural-log probability of ``word`` after ``state``, and the state after it."""
        out = self._kenlm.State()
        return out, LN10 * self.model.BaseScore(state, word, out)

    def known(self, word: str) -> bool:
        return word in self.model


def read_arpa_unigrams(path: Path) -> dict[str, float]:
    """The ``\\1-grams:`` section of an ARPA file (empty when the file is binary)."""
    unigrams: dict[str, float] = {}
    with path.open("rb") as raw:
        if not raw.read(64).lstrip().startswith(b"\\data\\"):
            return unigrams
    with path.open(encoding="utf-8", errors="replace") as lines:
        section = False
        for line in lines:
            if line.startswith("\\"):
                if section:
                    break
                section = line.strip() == "\\1-grams:"
                continue
            fields = line.split()
            if section and len(fields) >= 2:
                unigrams[fields[1]] = float(fields[0])
    return unigrams


def prefix_lookahead(unigrams: dict[str, float]) -> dict[str, float]:
    """Best natural-log unigram probability of the words starting with each prefix."""
    table: dict[str, float] = {}
    for word, logp in unigrams.items():
        if word.startswith("<") and word.endswith(">"):
            continue
        score = LN10 * logp
        for end in range(1, len(word) + 1):
            prefix = word[:end]
            if table.get(prefix, -math.inf) < score:
                table[prefix] = score
    return table


@dataclass(frozen=True)
class _Info:
    """What a path's state knows: its LM context and its place in the current word."""

    lm_state: Any
    word: str
    """Letters of the word being spelled."""
    given: float
    """Score already given to that unfinished word (its weighted lookahead, penalties)."""
    hot: _Node | None
    """Where the path stands in the hotword trie (None: in no phrase)."""
    hot_gain: float
    """Hotword bonus given to the phrase in progress (taken back if it is left)."""


def make_scorer(
    vocab: Vocabulary, word_lm: WordLm | None, weights: Weights, hotwords: HotwordTrie
) -> Any:
    """A :class:`ContextScorer` (built on flashlight's ``LM`` base class, imported lazily)."""
    decoder = load_flashlight()

    class _Scorer(ContextScorer, decoder.LM):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            decoder.LM.__init__(self)
            ContextScorer.__init__(self, vocab, word_lm, weights, hotwords)

    return _Scorer()


class ContextScorer:
    """The word LM and hotword scores of a segment's paths (see the module docstring)."""

    def __init__(
        self, vocab: Vocabulary, word_lm: WordLm | None, weights: Weights, hotwords: HotwordTrie
    ) -> None:
        self.word_lm = word_lm
        self.weights = weights
        self.hotwords = hotwords
        self._letters = {
            i: t
            for i, t in enumerate(vocab.tokens)
            if i != vocab.blank_id and t != vocab.word_delimiter and not is_special_token(t)
        }
        self._delimiter = vocab.word_delimiter_id
        self._lookahead = word_lm.lookahead if word_lm else {}
        self._hot_prefixes = {w[:n] for w in hotwords.words for n in range(1, len(w) + 1)}
        self._unk_logp = LN10 * word_lm.unigrams.get("<unk>", -7.0) if word_lm else 0.0
        self._info: dict[LMState, _Info] = {}
        self._scores: dict[tuple[LMState, int], tuple[LMState, float]] = {}
        """``score``'s answers of the segment, by (state, symbol): most calls are repeats."""
        self.allowed: frozenset[int] | None = None
        """Symbols the current frame may emit (None: all); others score :data:`IMPOSSIBLE`
        without a lookup (per-frame pruning by the decoder)."""

    # -- flashlight's LM interface --------------------------------------------------------------

    def start(self, start_with_nothing: bool) -> LMState:
        """A new segment: forget the previous one's states."""
        from flashlight.lib.text.decoder import LMState as State

        root = State()
        lm_state = self.word_lm.begin() if self.word_lm else None
        self._info = {root: _Info(lm_state, "", 0.0, None, 0.0)}
        self._scores = {}
        return root

    def score(self, state: LMState, token: int) -> tuple[LMState, float]:
        if self.allowed is not None and token not in self.allowed:
            return state, IMPOSSIBLE
        key = (state, token)
        known = self._scores.get(key)
        if known is not None:
            return known
        info = self._info[state]
        if token in self._letters:
            new, value = self._letter(info, token, self._letters[token])
        elif token == self._delimiter:
            if not info.word:  # a second delimiter changes nothing: same state, paths merge
                return state, 0.0
            new, value = self._delimit(info, token)
        else:
            return state, IMPOSSIBLE
        child = state.child(token)
        self._info[child] = new
        self._scores[key] = (child, value)
        return child, value

    def finish(self, state: LMState) -> tuple[LMState, float]:
        """End of segment: close the word in progress (and a phrase it completes), then
        ``</s>``."""
        info = self._info[state]
        total = 0.0
        if info.word:
            info, total = self._end_word(info)
        if info.hot is not None and not info.hot.end:
            total -= info.hot_gain
        if self.word_lm is not None:
            _, logp = self.word_lm.score(info.lm_state, "</s>")
            total += self.weights.lm_weight * logp
        return state, total

    # -- scoring --------------------------------------------------------------------------------

    def _letter(self, info: _Info, token: int, letter: str) -> tuple[_Info, float]:
        word = info.word + letter
        given = self._lookahead_score(info, word)
        hot, delta, gain = self._hot_step(info, token, word_start=not info.word)
        return _Info(info.lm_state, word, given, hot, gain), given - info.given + delta

    def _lookahead_score(self, info: _Info, word: str) -> float:
        if self.word_lm is None:
            return 0.0
        best = self._lookahead.get(word)
        if best is None and word in self._hot_prefixes:
            best = self._unk_logp  # a hotword the LM lacks: as likely as an unknown word
        if best is not None:
            return self.weights.lm_weight * best
        if not info.word or info.word in self._lookahead or info.word in self._hot_prefixes:
            return info.given + self.weights.unk_score  # leaving the LM's words: once
        return info.given

    def _delimit(self, info: _Info, token: int) -> tuple[_Info, float]:
        ended, value = self._end_word(info)
        hot, delta, gain = self._hot_step(info, token, word_start=False)
        return _Info(ended.lm_state, "", 0.0, hot, gain), value + delta

    def _end_word(self, info: _Info) -> tuple[_Info, float]:
        """Replace the word's lookahead by its n-gram score and the word score."""
        if self.word_lm is None:
            return info, -info.given
        lm_state, logp = self.word_lm.score(info.lm_state, info.word)
        value = self.weights.lm_weight * logp + self.weights.word_score
        if info.word not in self.hotwords.words and not self.word_lm.known(info.word):
            value += self.weights.unk_score
        return _Info(lm_state, "", 0.0, info.hot, info.hot_gain), value - info.given

    def _hot_step(
        self, info: _Info, token: int, word_start: bool
    ) -> tuple[_Node | None, float, float]:
        """The path's next place in the hotword trie, the score change (a bonus, or a refund of
        an unfinished phrase's bonus) and the bonus of the phrase now in progress."""
        if self.hotwords.empty:
            return None, 0.0, 0.0
        node = info.hot
        delta = 0.0
        if node is not None:
            step = node.children.get(token)
            if step is not None:
                return step, step.weight, info.hot_gain + step.weight
            if not (node.end and token == self._delimiter):  # completed phrases keep theirs
                delta = -info.hot_gain
        if word_start and token != self._delimiter:
            first = self.hotwords.root.children.get(token)
            if first is not None:
                return first, delta + first.weight, first.weight
        return None, delta, 0.0
