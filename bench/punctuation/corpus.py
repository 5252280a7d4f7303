"""Punctuated, cased English text from Debian packages, as ASR-style words with labels.

Sources (docs/punctuation.md gives each one's licence); install them with
``apt-get install fortunes fortunes-min bible-kjv dict-jargon``:

* ``fortunes``/``fortunes-min``: the English fortune files (quotations, jokes, aphorisms),
  attributions and art left out;
* ``dict-jargon``: the Jargon File's definitions (hacker prose, public domain);
* ``bible-kjv``: a capped share of the King James Bible's verses (public domain), so that its
  archaic register does not dominate.

Each text is split into sentences; a word is spelt as the CTC head spells it (upper-case
letters and apostrophes, hyphenated words split) and labelled with the mark after it (one of
:data:`MARKS`; ``;`` counts as ``,``, other marks as none) and whether its first letter was
upper-case. The train/held-out split is by passage with a fixed seed.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamasr.server.decoding.punctuation.labels import MARKS

FORTUNE_DIR = Path("/usr/share/games/fortunes")
JARGON_DICT = Path("/usr/share/dictd/jargon.dict.dz")
FORTUNE_FILES = (
    "computers",
    "cookie",
    "debian",
    "definitions",
    "disclaimer",
    "drugs",
    "education",
    "ethnic",
    "food",
    "fortunes",
    "goedel",
    "humorists",
    "kids",
    "knghtbrd",
    "law",
    "linux",
    "linuxcookie",
    "literature",
    "love",
    "magic",
    "medicine",
    "men-women",
    "miscellaneous",
    "news",
    "paradoxum",
    "people",
    "perl",
    "pets",
    "platitudes",
    "politics",
    "pratchett",
    "riddles",
    "science",
    "songs-poems",
    "sports",
    "tao",
    "translate-me",
    "wisdom",
    "work",
    "zippy",
)
"""The English fortune files of ``fortunes`` and ``fortunes-min`` that the corpus reads, less
``art``, ``ascii-art``, ``startrek``, ``debian-hints`` and the offensive ones: named, so that
another package's files in the same folder (``fortune-anarchism``...) leave the split as it is."""
KJV_BOOKS = ("gen", "exo", "psa", "pro", "ecc", "mat", "mar", "luk", "joh", "act", "rom")
KJV_VERSES = 4000
SEED = 19
HELD_OUT = 0.15
PACKAGES = "fortunes fortunes-min bible-kjv dict-jargon"

_TOKEN = re.compile(r"\S+")
_CORE = re.compile(r"[A-Za-z][A-Za-z']*")
_QUOTES = "\"'\u201c\u201d\u2018\u2019"
_SENTENCE_END = re.compile(rf"(?<=[.?!])[{_QUOTES})]*\s+(?=[{_QUOTES}(]*[A-Z])")
_MARK_MAP = {".": ".", ",": ",", "?": "?", "!": "!", ":": ":", ";": ","}
_JUNK = re.compile(r"[{}<>|=_#@*\\$%&^~\[\]]|https?:|[0-9]{3,}")


@dataclass(frozen=True)
class Word:
    """One ASR-style word and its targets."""

    text: str
    mark: str
    upper: bool


@dataclass(frozen=True)
class Sentence:
    """One sentence of a passage, with the source it came from."""

    source: str
    passage: int
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Corpus:
    train: list[Sentence]
    held_out: list[Sentence]


class CorpusUnavailableError(RuntimeError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}; install the corpus with: apt-get install {PACKAGES}")


def words_of(text: str) -> list[Word]:
    """The ASR-style words of a punctuated text, each with its mark and case."""
    out: list[Word] = []
    for token in _TOKEN.findall(text):
        pieces = [p for p in re.split("[-/\u2013\u2014]+", token) if p]
        for k, piece in enumerate(pieces):
            cores = _CORE.findall(piece)
            trail = piece[piece.rfind(cores[-1]) + len(cores[-1]) :] if cores else piece
            mark = _mark(trail) if k == len(pieces) - 1 else ""
            if not cores:
                if mark and out and not out[-1].mark:
                    out[-1] = Word(out[-1].text, mark, out[-1].upper)
                continue
            for j, raw in enumerate(cores):
                core = raw.strip("'")
                if not core:
                    continue
                last = j == len(cores) - 1
                out.append(Word(core.upper(), mark if last else "", core[0].isupper()))
    return out


def _mark(trail: str) -> str:
    for char in trail:
        if char in _MARK_MAP:
            return _MARK_MAP[char]
    return ""


def sentences_of(text: str) -> list[str]:
    """A passage cut after ``.``, ``?`` or ``!`` before a capital."""
    flat = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(flat) if s.strip()]


def fortunes() -> Iterator[str]:
    """The English fortune files' cookies, attributions and ASCII art left out."""
    if not FORTUNE_DIR.is_dir():
        raise CorpusUnavailableError(f"{FORTUNE_DIR} is missing")
    for name in FORTUNE_FILES:
        path = FORTUNE_DIR / name
        if path.is_file():
            yield from cookies(path.read_text(encoding="utf-8", errors="replace"))


def cookies(text: str) -> Iterator[str]:
    """The cookies of a fortune file (``%`` lines between them), each up to its attribution
    or indented verse; cookies with code, URLs, tables or a ``Name: `` dialogue left out."""
    for cookie in text.split("\n%\n"):
        lines = [ln for ln in cookie.splitlines() if ln.strip()]
        body = []
        for line in lines:
            if re.match(r"\s*--\s", line) or line.startswith(("\t\t", "        ")):
                break
            body.append(line)
        joined = " ".join(body)
        if body and not _JUNK.search(joined) and not re.search(r"^\s*\w+:\s", joined):
            yield joined


def jargon() -> Iterator[str]:
    """The Jargon File's definition paragraphs (cross-reference braces removed)."""
    if not JARGON_DICT.is_file():
        raise CorpusUnavailableError(f"{JARGON_DICT} is missing")
    with gzip.open(JARGON_DICT, "rt", encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.splitlines()
        if not lines or not all(ln.startswith("    ") for ln in lines):
            continue
        body = " ".join(ln.strip() for ln in lines)
        body = re.sub(r"\{\s*([^}]*)\}", r"\1", body)
        body = re.sub(r"^\[[^\]]*\]\s*", "", body)
        if len(body) > 40 and not _JUNK.search(body):
            yield body


def kjv() -> Iterator[str]:
    """Verses of :data:`KJV_BOOKS` through the ``bible`` program, :data:`KJV_VERSES` in all,
    grouped by chapter."""
    program = shutil.which("bible")
    if program is None:
        raise CorpusUnavailableError("the `bible` program (package bible-kjv) is missing")
    per_book = KJV_VERSES // len(KJV_BOOKS)
    for book in KJV_BOOKS:
        listing = subprocess.run(
            [program, "-f", f"{book}1:1-{book}50:99"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        chapter: list[str] = []
        current = ""
        for line in listing.splitlines()[:per_book]:
            match = re.match(r"(\w+?\d+):\d+ (.*)", line)
            if match is None:
                continue
            if match.group(1) != current and chapter:
                yield " ".join(chapter)
                chapter = []
            current = match.group(1)
            chapter.append(match.group(2))
        if chapter:
            yield " ".join(chapter)


def passages() -> Iterator[tuple[str, str]]:
    """``(source, text)`` for every passage of every source."""
    for source, reader in (("fortunes", fortunes), ("jargon", jargon), ("kjv", kjv)):
        for text in reader():
            yield source, text


def build(seed: int = SEED, held_out: float = HELD_OUT) -> Corpus:
    """The corpus, split by passage: a passage is wholly train or wholly held out."""
    rng = random.Random(seed)
    train: list[Sentence] = []
    test: list[Sentence] = []
    for number, (source, text) in enumerate(passages()):
        side = test if rng.random() < held_out else train
        for sentence in sentences_of(text):
            words = words_of(sentence)
            if len(words) >= 2:
                side.append(Sentence(source, number, tuple(words)))
    return Corpus(train, test)


def segments(
    sentences: Sequence[Sentence], seed: int = SEED, low: int = 10, high: int = 40
) -> list[list[Word]]:
    """Consecutive sentences joined into ASR-like segments of ``low`` to ``high`` words (a
    sentence longer than ``high`` is cut, as an endpoint would)."""
    rng = random.Random(seed)
    out: list[list[Word]] = []
    current: list[Word] = []
    target = rng.randint(low, high)
    for sentence in sentences:
        current.extend(sentence.words)
        while len(current) >= target:
            out.append(current[:target] if len(current) > high else current)
            current = current[target:] if len(current) > high else []
            target = rng.randint(low, high)
    if current:
        out.append(current)
    return out


def summary(corpus: Corpus) -> str:
    """Words and sentences per source and side."""
    lines = []
    for name, side in (("train", corpus.train), ("held-out", corpus.held_out)):
        counts: dict[str, int] = {}
        for s in side:
            counts[s.source] = counts.get(s.source, 0) + len(s.words)
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        lines.append(f"{name}: {len(side)} sentences, {sum(counts.values())} words ({detail})")
    marks = {m: 0 for m in MARKS}
    for s in corpus.train:
        for w in s.words:
            marks[w.mark] += 1
    lines.append("train marks: " + ", ".join(f"{m or 'none'} {n}" for m, n in marks.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(build()))
