"""``asr-lm``: a word n-gram language model (ARPA) from a text file, for beam search decoding.

    asr-lm TEXT_FILE --out LM_FILE [--order N] [--model DIR]

Each line of ``TEXT_FILE`` is a sentence. It is normalised to the model's alphabet (from the
manifest of ``--model DIR``; without it the wav2vec2 English one, A-Z and the apostrophe): case
folded, every other character a word break
(:class:`~streamasr.server.decoding.hotwords.Alphabet`, the same normalisation the server gives
hotwords).

The estimate is interpolated modified Kneser-Ney (Chen & Goodman 1998), as KenLM's ``lmplz``
computes it: KenLM's estimator is a C++ program that no PyPI package ships (the ``kenlm`` wheel
is the query library only), so this module implements it: adjusted counts (raw counts at the
highest order and for n-grams starting with ``<s>``, continuation counts below), three discounts
per order from the counts of counts, interpolation with the lower order down to the uniform
distribution, ``<unk>`` holding the uniform share. No pruning. The ARPA file loads in KenLM
(and so in the server, ``--lm``); KenLM's ``build_binary`` can turn it into a binary file, which
the server loads too. Memory is about 200 bytes per distinct n-gram: fine for corpora of a few
million words; use ``lmplz`` for larger ones.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamasr.server.decoding.hotwords import Alphabet
from streamasr.server.manifest import read_manifest

Gram = tuple[str, ...]
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
"""Discounts of an order whose counts of counts are too few to estimate them (tiny corpora)."""


@dataclass(frozen=True)
class ArpaModel:
    """log10 probabilities and backoff weights per order (``probs[n - 1]``: n-grams)."""

    probs: list[dict[Gram, float]]
    backoffs: list[dict[Gram, float]]

    @property
    def order(self) -> int:
        return len(self.probs)


def read_sentences(path: Path, alphabet: Alphabet) -> Iterator[list[str]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            words = alphabet.words(line)
            if words:
                yield words


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter[Gram]]:
    """Raw counts of every n-gram, n = 1..order, of ``<s> words </s>``."""
    counts: list[Counter[Gram]] = [Counter() for _ in range(order)]
    for words in sentences:
        seq = (BOS, *words, EOS)
        for n in range(1, order + 1):
            table = counts[n - 1]
            for i in range(len(seq) - n + 1):
                table[seq[i : i + n]] += 1
    return counts


def adjusted_counts(raw: list[Counter[Gram]]) -> list[dict[Gram, int]]:
    """Highest order and n-grams starting with ``<s>``: raw counts; others: how many distinct
    words precede them."""
    adjusted: list[dict[Gram, int]] = [dict(raw[-1])]
    for n in range(len(raw) - 1, 0, -1):
        left: Counter[Gram] = Counter(g[1:] for g in raw[n])
        adjusted.insert(0, {g: (c if g[0] == BOS else left[g]) for g, c in raw[n - 1].items()})
    return adjusted


def discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """D1, D2, D3+ from the counts of counts (Chen & Goodman's estimates)."""
    t = Counter(c for c in counts if c <= 4)
    t1, t2, t3, t4 = (t[k] for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    found = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if not all(0 < d < k for d, k in zip(found, (1, 2, 3), strict=True)):
        return FALLBACK_DISCOUNTS
    return found


def estimate(sentences: Iterable[Sequence[str]], order: int) -> ArpaModel:
    """Interpolated modified Kneser-Ney n-gram model of ``sentences``."""
    if not 1 <= order <= 9:
        raise ValueError(f"order {order} is not 1 to 9")
    adjusted = adjusted_counts(count_ngrams(sentences, order))
    if not adjusted[0]:
        raise ValueError("no words in the text")
    probs: list[dict[Gram, float]] = []
    backoffs: list[dict[Gram, float]] = []
    lower: dict[Gram, float] = {}
    for n, raw in enumerate(adjusted, 1):
        counts = raw if n > 1 else {g: c for g, c in raw.items() if g != (BOS,)} | {(UNK,): 0}
        p, gamma = _order_probs(counts, discounts(counts.values()))
        if n == 1:
            share = gamma[()] / len(counts)
            p = {g: v + share for g, v in p.items()}
        else:
            p = {g: v + gamma[g[:-1]] * lower[g[1:]] for g, v in p.items()}
        probs.append(p)
        backoffs.append(gamma)
        lower = p
    return _to_log10(probs, backoffs)


def _order_probs(
    counts: dict[Gram, int], d: tuple[float, float, float]
) -> tuple[dict[Gram, float], dict[Gram, float]]:
    """Discounted probabilities of one order and the mass each context leaves to the lower."""
    totals: defaultdict[Gram, int] = defaultdict(int)
    kinds: defaultdict[Gram, list[int]] = defaultdict(lambda: [0, 0, 0])
    for gram, count in counts.items():
        totals[gram[:-1]] += count
        if count > 0:
            kinds[gram[:-1]][min(count, 3) - 1] += 1
    probs = {
        g: max(c - d[min(c, 3) - 1], 0.0) / totals[g[:-1]] if c > 0 else 0.0
        for g, c in counts.items()
    }
    gamma = {
        h: sum(di * k for di, k in zip(d, kinds[h], strict=True)) / t for h, t in totals.items()
    }
    return probs, gamma


def _to_log10(probs: list[dict[Gram, float]], gammas: list[dict[Gram, float]]) -> ArpaModel:
    logs = [{g: math.log10(p) for g, p in table.items()} for table in probs]
    logs[0][(BOS,)] = -99.0
    backoffs: list[dict[Gram, float]] = []
    for n, table in enumerate(logs, 1):
        contexts = gammas[n] if n < len(logs) else {}
        backoffs.append({g: math.log10(contexts[g]) for g in table if contexts.get(g, 0.0) > 0})
    return ArpaModel(logs, backoffs)


def write_arpa(model: ArpaModel, path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("\\data\\\n")
        for n, table in enumerate(model.probs, 1):
            out.write(f"ngram {n}={len(table)}\n")
        for n, table in enumerate(model.probs, 1):
            out.write(f"\n\\{n}-grams:\n")
            backoff = model.backoffs[n - 1]
            for gram in sorted(table):
                line = f"{table[gram]:.6f}\t{' '.join(gram)}"
                if gram in backoff:
                    line += f"\t{backoff[gram]:.6f}"
                out.write(line + "\n")
        out.write("\n\\end\\\n")


def build_lm(text: Path, out: Path, order: int = 4, model: Path | None = None) -> ArpaModel:
    """Normalise ``text`` to the alphabet of ``model`` (English without it), estimate, write."""
    alphabet = Alphabet.of(read_manifest(model).vocabulary) if model else Alphabet.english()
    lm = estimate(read_sentences(text, alphabet), order)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_arpa(lm, out)
    return lm


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asr-lm",
        description="Build a word n-gram LM (ARPA, interpolated modified Kneser-Ney) from a text "
        "file, one sentence a line, for asr-server --lm.",
    )
    parser.add_argument("text", type=Path, help="text file, one sentence per line")
    parser.add_argument("--out", type=Path, required=True, help="ARPA file to write")
    parser.add_argument("--order", type=int, default=4, help="n-gram order (default: 4)")
    parser.add_argument("--model", type=Path, help="asr-export folder: its alphabet")
    args = parser.parse_args(argv)
    try:
        lm = build_lm(args.text, args.out, args.order, args.model)
    except (OSError, ValueError) as exc:
        print(f"asr-lm: {exc}", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{n}-grams {len(t)}" for n, t in enumerate(lm.probs, 1))
    print(f"wrote {args.out} (order {lm.order}: {sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
