"""Held-out text figures of a punctuation export for the report: per mark and casing P/R/F1 of
the int8 model through the engine's streaming rule beside the trivial baseline, and the gains.

The systems, corpus and scoring are those of ``python -m bench punctuation``
(:mod:`bench.punctuation.bench`); the stream rule runs at the engine's own settings
(:class:`~streamasr.server.decoding.punctuation.stable.StablePunctuator`'s defaults).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamasr.server.decoding.punctuation.model import PunctuationModel
from streamasr.server.decoding.punctuation.stable import DEFAULT_END_MARK, DEFAULT_LOOKAHEAD

from .bench import ACCEPT_GAIN, EVAL_MARKS, baseline, evaluate, streaming, timed
from .corpus import build, segments

CLASSES = (*EVAL_MARKS, "upper")
"""The scored classes: each mark after a word, and a word's first letter upper-case."""
SYSTEMS = ("baseline", "int8 stream")


def held_out_figures(model_folder: Path, limit: int | None = None) -> dict[str, Any]:
    """Scores of the baseline and the int8 model (streaming rule) on the held-out segments
    (the first ``limit`` of them; None: all), the F1 gains, and CPU per 1,000 words."""
    gold = segments(build().held_out)
    if limit is not None:
        gold = gold[:limit]
    words = [[w.text for w in seg] for seg in gold]
    total = sum(len(ws) for ws in words)
    model = PunctuationModel.open(model_folder, "int8", threads=1)
    systems = {
        "baseline": baseline,
        "int8 stream": streaming(model, DEFAULT_LOOKAHEAD, DEFAULT_END_MARK),
    }
    scores: dict[str, Any] = {}
    cpu: dict[str, float] = {}
    for name, system in systems.items():
        labels, seconds = timed(system, words)
        scores[name] = {c: asdict(s) for c, s in evaluate(gold, labels).items()}
        cpu[name] = 1000 * seconds / total
    gains = {c: scores["int8 stream"][c]["f1"] - scores["baseline"][c]["f1"] for c in CLASSES}
    return {
        "segments": len(gold),
        "words": total,
        "lookahead": DEFAULT_LOOKAHEAD,
        "end_mark": DEFAULT_END_MARK,
        "scores": scores,
        "f1_gain": gains,
        "cpu_s_per_1k_words": cpu,
        "accept_gain": ACCEPT_GAIN,
        "gain_met": min(gains["."], gains[","]) >= ACCEPT_GAIN,
    }


def table(f: dict[str, Any]) -> str:
    head = " | ".join(f"`{c}` P / R / F1" for c in CLASSES)
    lines = [
        f"| system | {head} | thread CPU s per 1k words |",
        "| --- |" + " ---: |" * (len(CLASSES) + 1),
    ]
    for name in SYSTEMS:
        s = f["scores"][name]
        cells = " | ".join(
            f"{s[c]['precision']:.2f} / {s[c]['recall']:.2f} / {s[c]['f1']:.2f}" for c in CLASSES
        )
        lines.append(f"| {name} | {cells} | {f['cpu_s_per_1k_words'][name]:.3f} |")
    gains = " | ".join(f"{f['f1_gain'][c]:+.2f}" for c in CLASSES)
    support = " | ".join(str(f["scores"]["baseline"][c]["support"]) for c in CLASSES)
    lines += [f"| F1 gain | {gains} | |", f"| support (gold) | {support} | |"]
    return "\n".join(lines)
