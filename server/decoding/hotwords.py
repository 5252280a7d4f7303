"""Hotwords: phrases a session asks the decoder to favour, spelled in the model's alphabet.

A hotword is *boosting*, not a grammar: while a hypothesis spells a listed phrase, each of its
symbols earns ``weight`` (natural-log units, added to the path's score); a hypothesis that leaves
the phrase before its end gives the partial bonus back, so only completed phrases keep it
(context biasing with refunds, as in sherpa-onnx's context graph or pyctcdecode's hotword scorer).
Other words are still recognised.

:class:`Alphabet` is the one normalisation from free text to what a CTC vocabulary can spell; the
LM builder (``asr-lm``) uses it too, so the LM's words and the decoder's words agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamasr.server.decoding.ctc import is_special_token
from streamasr.server.errors import StreamConfigError
from streamasr.server.manifest import Vocabulary
from streamasr.server.options.decoding import (
    DEFAULT_HOTWORD_WEIGHT,
    MAX_HOTWORD_CHARS,
    MAX_HOTWORDS,
    check_weight,
)


class Alphabet:
    """Which characters a vocabulary spells, and how free text maps onto them."""

    def __init__(self, letters: Iterable[str]) -> None:
        self.letters = frozenset(letters)
        upper = sum(1 for c in self.letters if c.isupper())
        lower = sum(1 for c in self.letters if c.islower())
        self.upper = upper >= lower

    @classmethod
    def of(cls, vocab: Vocabulary) -> Alphabet:
        """The single-character symbols of ``vocab`` other than the blank and the delimiter."""
        return cls(
            t
            for i, t in enumerate(vocab.tokens)
            if i != vocab.blank_id
            and t != vocab.word_delimiter
            and not is_special_token(t)
            and len(t) == 1
        )

    @classmethod
    def english(cls) -> Alphabet:
        """A-Z and the apostrophe: the wav2vec2 English character vocabulary."""
        return cls([*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "'"])

    def words(self, text: str) -> list[str]:
        """``text`` as words of this alphabet: case folded to the alphabet's case, every other
        character (punctuation, digits, symbols) a word break."""
        folded = text.upper() if self.upper else text.lower()
        cleaned = "".join(c if c in self.letters else " " for c in folded)
        return cleaned.split()

    def normalise(self, text: str) -> str:
        return " ".join(self.words(text))


@dataclass(frozen=True)
class Hotword:
    """One phrase to boost, as spelled in the model's alphabet (words joined by one space)."""

    phrase: str
    weight: float = DEFAULT_HOTWORD_WEIGHT

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.phrase.split(" "))


def make_hotwords(
    phrases: Sequence[str], alphabet: Alphabet, weight: float = DEFAULT_HOTWORD_WEIGHT
) -> tuple[Hotword, ...]:
    """Normalise and bound a list of phrases (raises :class:`StreamConfigError`); phrases that
    normalise to nothing are dropped, duplicates kept once."""
    check_weight("hotword_weight", weight)
    if len(phrases) > MAX_HOTWORDS:
        raise StreamConfigError("hotwords", len(phrases), f"at most {MAX_HOTWORDS} phrases")
    seen: dict[str, Hotword] = {}
    for raw in phrases:
        phrase = alphabet.normalise(raw)
        if len(phrase) > MAX_HOTWORD_CHARS:
            raise StreamConfigError("hotwords", raw, f"at most {MAX_HOTWORD_CHARS} characters")
        if phrase and phrase not in seen:
            seen[phrase] = Hotword(phrase, weight)
    return tuple(seen.values())


def read_hotwords_file(path: Path, alphabet: Alphabet, weight: float) -> tuple[Hotword, ...]:
    """One phrase per line; ``PHRASE<TAB>WEIGHT`` sets that phrase's own weight; ``#`` starts a
    comment line. The count and length bounds are a session's."""
    hotwords: dict[str, Hotword] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text, _, own = line.partition("\t")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            phrase_weight = float(own) if own.strip() else weight
        except ValueError:
            raise StreamConfigError(
                "hotwords", f"{path}:{number}", "weight is not a number"
            ) from None
        for hotword in make_hotwords([text], alphabet, phrase_weight):
            hotwords[hotword.phrase] = hotword
    if len(hotwords) > MAX_HOTWORDS:
        raise StreamConfigError("hotwords", str(path), f"at most {MAX_HOTWORDS} phrases")
    return tuple(hotwords.values())


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    depth: int = 0
    weight: float = 0.0
    """The bonus per symbol on the way to a phrase end below this node (the largest)."""
    end: bool = False


class HotwordTrie:
    """Hotword phrases as symbol-id paths (letters, the delimiter between words)."""

    def __init__(self, hotwords: Iterable[Hotword], vocab: Vocabulary) -> None:
        self.root = _Node()
        index = {t: i for i, t in enumerate(vocab.tokens)}
        delimiter = vocab.word_delimiter_id
        self.words: frozenset[str] = frozenset(w for h in hotwords for w in h.words)
        for hotword in hotwords:
            ids: list[int] = []
            for n, word in enumerate(hotword.words):
                if n and delimiter is not None:
                    ids.append(delimiter)
                ids += [index[c] for c in word if c in index]
            self._insert(ids, hotword.weight)

    def _insert(self, ids: list[int], weight: float) -> None:
        node = self.root
        for symbol in ids:
            node = node.children.setdefault(symbol, _Node(depth=node.depth + 1))
            node.weight = max(node.weight, weight)
        node.end = True

    @property
    def empty(self) -> bool:
        return not self.root.children
