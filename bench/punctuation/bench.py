"""Punctuation and casing on the held-out corpus: F1 per mark and for casing, and CPU cost.

The held-out sentences are joined into ASR-like segments of 10 to 40 words
(:func:`~.punctuation_corpus.segments`). Systems: the trivial baseline (first word upper-case,
a full stop at the segment's end), the exported model whole-segment and through the streaming
rule (words committed one to three at a time with up to three provisional words after them;
a segment's unmarked last word gets --end-mark, as the streaming rule does),
each at fp32 and int8, and the ``truecase`` package for casing when it is installed::

    nice -n 10 python -m bench punctuation --model EXPORT_FOLDER
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.punctuation.corpus import SEED, Word, build, segments
from streamasr.server.decoding.punctuation.labels import WordLabel, close_segment, resolve_case
from streamasr.server.decoding.punctuation.model import PunctuationModel
from streamasr.server.decoding.punctuation.stable import StablePunctuator

EVAL_MARKS = (".", ",", "?")
ACCEPT_GAIN = 0.15
System = Callable[[list[list[str]]], list[list[WordLabel]]]


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    support: int


def score(gold: Sequence[bool], predicted: Sequence[bool]) -> Score:
    tp = sum(g and p for g, p in zip(gold, predicted, strict=True))
    fp = sum(p and not g for g, p in zip(gold, predicted, strict=True))
    fn = sum(g and not p for g, p in zip(gold, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, tp + fn)


def evaluate(gold: list[list[Word]], predicted: list[list[WordLabel]]) -> dict[str, Score]:
    flat_gold = [w for seg in gold for w in seg]
    flat = [lab for seg in predicted for lab in seg]
    if len(flat) != len(flat_gold):
        raise ValueError("a system changed the number of words")
    out = {
        m: score([w.mark == m for w in flat_gold], [p.mark == m for p in flat]) for m in EVAL_MARKS
    }
    out["upper"] = score([w.upper for w in flat_gold], [bool(p.upper) for p in flat])
    return out


def baseline(batch: list[list[str]]) -> list[list[WordLabel]]:
    return [
        [WordLabel("." if i == len(ws) - 1 else "", i == 0) for i in range(len(ws))] for ws in batch
    ]


def whole(model: PunctuationModel, end_mark: str, batch_size: int = 16) -> System:
    def run(batch: list[list[str]]) -> list[list[WordLabel]]:
        out: list[list[WordLabel]] = []
        for k in range(0, len(batch), batch_size):
            part = batch[k : k + batch_size]
            labels = model.punctuate_batch(part)
            out += [
                resolve_case(ws, close_segment(ls, end_mark), None)
                for ws, ls in zip(part, labels, strict=True)
            ]
        return out

    return run


def streaming(model: PunctuationModel, lookahead: int, end_mark: str) -> System:
    """Each segment fed as a growing stream; segments follow one another (context carried)."""

    def run(batch: list[list[str]]) -> list[list[WordLabel]]:
        rng = random.Random(SEED)
        out: list[list[WordLabel]] = []
        punctuator = StablePunctuator(model, lookahead=lookahead, end_mark=end_mark)
        for words in batch:
            punctuator = punctuator.next_segment()
            committed = 0
            while committed < len(words):
                committed = min(len(words), committed + rng.randint(1, 3))
                provisional = words[committed : committed + rng.randint(0, 3)]
                punctuator.update(words[:committed], provisional)
            punctuator.update(words, final=True)
            out.append([f.label for f in punctuator.frozen])
        return out

    return run


def truecase_system() -> System | None:
    try:
        from truecase import TrueCaser  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    caser = TrueCaser()

    def run(batch: list[list[str]]) -> list[list[WordLabel]]:
        out = []
        for ws in batch:
            tokens = caser.get_true_case_from_tokens([w.lower() for w in ws], "as-is")
            out.append([WordLabel("", t[:1].isupper()) for t in tokens])
        return out

    return run


def timed(system: System, batch: list[list[str]]) -> tuple[list[list[WordLabel]], float]:
    started = time.thread_time()
    labels = system(batch)
    return labels, time.thread_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="asr-export --punctuation output")
    parser.add_argument("--lookahead", type=int, default=4)
    parser.add_argument(
        "--end-mark", default=".", help="mark for a segment's unmarked last word ('' for none)"
    )
    parser.add_argument("--limit", type=int, default=0, help="first N segments only (0: all)")
    args = parser.parse_args(argv)
    gold = segments(build().held_out)
    if args.limit:
        gold = gold[: args.limit]
    words = [[w.text for w in seg] for seg in gold]
    total = sum(len(ws) for ws in words)
    systems: dict[str, System] = {"baseline": baseline}
    for precision in ("fp32", "int8"):
        model = PunctuationModel.open(args.model, precision, threads=1)
        systems[f"{precision} whole"] = whole(model, args.end_mark)
        systems[f"{precision} stream"] = streaming(model, args.lookahead, args.end_mark)
        if precision == "int8" and args.end_mark:
            systems["int8 stream, no end"] = streaming(model, args.lookahead, "")
    caser = truecase_system()
    if caser is not None:
        systems["truecase (case only)"] = caser
    print(f"{len(gold)} held-out segments, {total} words, lookahead {args.lookahead}\n")
    header = f"{'system':<22}" + "".join(f"{m + ' P/R/F1':>20}" for m in (*EVAL_MARKS, "upper"))
    print(header + f"{'cpu s/1k words':>16}")
    print("-" * (len(header) + 16))
    results: dict[str, dict[str, Score]] = {}
    for name, system in systems.items():
        labels, seconds = timed(system, words)
        figures = results[name] = evaluate(gold, labels)
        cells = "".join(
            f"{s.precision:>8.2f}{s.recall:>6.2f}{s.f1:>6.2f}" for s in figures.values()
        )
        print(f"{name:<22}{cells}{1000 * seconds / total:>16.3f}")
    print(f"\nF1 gain over the baseline (acceptance: >= {ACCEPT_GAIN} on '.' and ','):")
    for name in (n for n in results if n.endswith(("whole", "stream"))):
        gains = {m: results[name][m].f1 - results["baseline"][m].f1 for m in (".", ",")}
        verdict = "meets" if min(gains.values()) >= ACCEPT_GAIN else "misses"
        cells = ", ".join(f"'{m}' {g:+.2f}" for m, g in gains.items())
        print(f"  {name:<14} {cells}: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
