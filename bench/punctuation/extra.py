"""Extra training text for the punctuation fixture: train side only, never held out or dev.

Sources (docs/punctuation.md gives each one's licence); install them with
``apt-get install dict-devil fortune-anarchism dict-foldoc bible-kjv``:

* ``dict-devil``: Ambrose Bierce's *The Devil's Dictionary* (public domain), each entry's
  definition paragraph without its head word;
* ``fortune-anarchism``: the anarchist quotations of the BLAG fortune assortment (public
  domain), attributions left out;
* ``dict-foldoc``: FOLDOC's definition paragraphs (GFDL), capped, entries taken from the
  Jargon File left out (the corpus's held-out text holds Jargon File paragraphs);
* ``bible-kjv``: King James verses of books the corpus does not read (so no held-out chapter
  has a parallel here), capped.

The held-out text must stay exactly what :func:`~bench.punctuation.corpus.build` holds out:
these passages never enter its seeded draw, and a passage with a sentence of five or more
words that is also a held-out sentence is dropped.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.punctuation.corpus import (
    _JUNK,
    SEED,
    CorpusUnavailableError,
    Sentence,
    cookies,
    sentences_of,
    words_of,
)

DEVIL_DICT = Path("/usr/share/dictd/devil.dict.dz")
FOLDOC_DICT = Path("/usr/share/dictd/foldoc.dict.dz")
ANARCHISM = Path("/usr/share/games/fortunes/anarchism")
KJV_MORE_BOOKS = ("Josh", "Jdgs", "1Sm", "Job", "Isa", "Jer", "Eph", "Heb", "Rev")
"""``bible`` abbreviations of books the corpus's own KJV share does not touch."""
CAPS = {"devil": 60_000, "anarchism": 40_000, "foldoc": 100_000, "kjv-more": 45_000}
"""Most words taken from each source (passages drawn in a seeded order up to the cap)."""
FIRST_PASSAGE = 1_000_000
"""Passage numbers of extra text start here, after every corpus passage."""
PACKAGES = "dict-devil fortune-anarchism dict-foldoc bible-kjv"


def _dict_text(path: Path) -> str:
    if not path.is_file():
        raise CorpusUnavailableError(f"{path} is missing; apt-get install {PACKAGES}")
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.read()


def devil() -> Iterator[str]:
    """The Devil's Dictionary's definitions: ``WORD, n.  Definition...`` paragraphs, head word
    and part of speech cut, indented verse and quotations left out."""
    for paragraph in re.split(r"\n\s*\n", _dict_text(DEVIL_DICT)):
        match = re.match(r"[A-Z][A-Z' -]*, [a-z. ]+?\s{2,}(\S.*)", paragraph, re.DOTALL)
        if match is None or any(ln.startswith(" ") for ln in paragraph.splitlines()):
            continue
        body = " ".join(match.group(1).split()).replace("_", "")
        if len(body) > 20 and not _JUNK.search(body):
            yield body


def anarchism() -> Iterator[str]:
    if not ANARCHISM.is_file():
        raise CorpusUnavailableError(f"{ANARCHISM} is missing; apt-get install {PACKAGES}")
    yield from cookies(ANARCHISM.read_text(encoding="utf-8", errors="replace"))


def foldoc() -> Iterator[str]:
    """FOLDOC's definition paragraphs (``<category>`` tags and ``{cross-reference}`` braces
    removed), entries from the Jargon File left out."""
    for entry in re.split(r"\n(?=\S)", _dict_text(FOLDOC_DICT)):
        if "Jargon File" in entry:
            continue
        for paragraph in re.split(r"\n\s*\n", entry):
            lines = paragraph.splitlines()
            if not lines or not all(ln.startswith("   ") and ln[3:4] != " " for ln in lines):
                continue
            body = " ".join(ln.strip() for ln in lines)
            body = re.sub(r"^<[^>]*>\s*", "", body)
            body = re.sub(r"\{\s*([^}]*)\}", r"\1", body)
            if len(body) > 40 and not _JUNK.search(body) and body[-1] in ".?!":
                yield body


def kjv_more() -> Iterator[str]:
    """Chapters of :data:`KJV_MORE_BOOKS` through the ``bible`` program."""
    program = shutil.which("bible")
    if program is None:
        raise CorpusUnavailableError(f"the `bible` program is missing; apt-get install {PACKAGES}")
    for book in KJV_MORE_BOOKS:
        listing = subprocess.run(
            [program, "-f", f"{book}1:1-{book}99:99"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        chapters: dict[str, list[str]] = {}
        for line in listing.splitlines():
            match = re.match(r"(\w+?\d+):\d+ (.*)", line)
            if match is not None:
                chapters.setdefault(match.group(1), []).append(match.group(2))
        for verses in chapters.values():
            yield " ".join(verses)


READERS = {"devil": devil, "anarchism": anarchism, "foldoc": foldoc, "kjv-more": kjv_more}


def extra_train(
    held_out: Sequence[Sentence], caps: dict[str, int] | None = None, seed: int = SEED
) -> list[Sentence]:
    """The extra sources' sentences, each source's passages drawn in a seeded order until its
    cap of words, in source order; passages that share a sentence with ``held_out`` dropped."""
    caps = CAPS if caps is None else caps
    seen = {tuple(w.text for w in s.words) for s in held_out if len(s.words) >= 5}
    out: list[Sentence] = []
    number = FIRST_PASSAGE
    for source, reader in READERS.items():
        texts = list(reader())
        random.Random(seed).shuffle(texts)
        taken = 0
        for text in texts:
            if taken >= caps.get(source, 0):
                break
            sentences = [ws for ws in map(words_of, sentences_of(text)) if len(ws) >= 2]
            if any(tuple(w.text for w in ws) in seen for ws in sentences if len(ws) >= 5):
                continue
            out += [Sentence(source, number, tuple(ws)) for ws in sentences]
            taken += sum(len(ws) for ws in sentences)
            number += 1
    return out


if __name__ == "__main__":
    from bench.punctuation.corpus import build

    extra = extra_train(build().held_out)
    counts: dict[str, int] = {}
    for s in extra:
        counts[s.source] = counts.get(s.source, 0) + len(s.words)
    print(f"extra train: {len(extra)} sentences, {sum(counts.values())} words, {counts}")
