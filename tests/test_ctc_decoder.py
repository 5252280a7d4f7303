"""Incremental greedy CTC decoding on synthetic logits: stability, times, confidence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray

from streamasr.server.decoding.ctc import greedy_text
from streamasr.server.decoding.greedy import GreedyCtcDecoder, best_path
from streamasr.server.events import Hypothesis
from streamasr.server.manifest import Vocabulary

VOCAB = Vocabulary(("<pad>", "<s>", "</s>", "<unk>", "|", "A", "B", "C", "H", "I"), 0, "|")
ID = {t: i for i, t in enumerate(VOCAB.tokens)}
FRAME_S = 0.02


def logits_for(path: str, peak: float = 8.0) -> NDArray[np.float32]:
    """One frame per character of ``path`` ('_' blank, '?' <unk>), best symbol ``peak`` above."""
    ids = [ID["<pad>"] if c == "_" else ID["<unk>"] if c == "?" else ID[c] for c in path]
    out = np.zeros((len(ids), len(VOCAB.tokens)), dtype=np.float32)
    out[np.arange(len(ids)), ids] = peak
    return out


def decode(logits: NDArray[np.float32], cuts: list[int]) -> tuple[list[Hypothesis], str]:
    decoder = GreedyCtcDecoder(VOCAB, FRAME_S)
    hyps = []
    bounds = [0, *cuts, logits.shape[0]]
    for a, b in itertools.pairwise(bounds):
        hyps.append(decoder.advance(logits[a:b], logits[b : b + 5]))
    return hyps, decoder.end_segment().text


def test_committed_text_never_changes() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 120))
        logits = rng.normal(size=(n, len(VOCAB.tokens))).astype(np.float32)
        logits[:, 0] += rng.uniform(0, 3)  # plenty of blanks, as in real output
        cuts = sorted({int(c) for c in rng.integers(0, n, size=int(rng.integers(0, 10)))})
        hyps, text = decode(logits, cuts)
        for earlier, later in itertools.pairwise(hyps):
            assert later.committed.startswith(earlier.committed), trial
        assert hyps[-1].committed == text == greedy_text(logits, VOCAB)
        for h in hyps:
            assert h.text.startswith(h.committed)


@pytest.mark.parametrize("cut", range(1, 9))
def test_repeats_merge_across_blocks(cut: int) -> None:
    logits = logits_for("AA|A_AB|B")
    _, text = decode(logits, [cut])
    assert text == greedy_text(logits, VOCAB) == "A AAB B"


def test_provisional_tail_continues_the_committed_path() -> None:
    decoder = GreedyCtcDecoder(VOCAB, FRAME_S)
    hyp = decoder.advance(logits_for("_HH"), logits_for("HI|A"))
    assert hyp == Hypothesis("H", "I A")
    hyp = decoder.advance(logits_for("HI"), logits_for("_"))
    assert hyp == Hypothesis("HI", "")
    assert decoder.advance(logits_for(""), logits_for("")) == Hypothesis("HI", "")


def test_words_carry_frame_times() -> None:
    decoder = GreedyCtcDecoder(VOCAB, FRAME_S)
    decoder.advance(logits_for("__HH_I_|"), logits_for(""))
    decoder.advance(logits_for("__A?B__C|||"), logits_for(""))
    segment = decoder.end_segment()
    assert segment.text == "HI ABC"
    first, second = segment.words
    assert (first.text, first.start, first.end) == ("HI", 0.04, 0.12)
    assert (second.text, second.start, second.end) == ("ABC", 0.20, 0.32)
    assert " ".join(w.text for w in segment.words) == segment.text


def test_confidence_is_the_mean_best_symbol_probability() -> None:
    sure = logits_for("AB", peak=30.0)
    unsure = logits_for("C", peak=0.0)  # all symbols equal: probability 1/vocab
    decoder = GreedyCtcDecoder(VOCAB, FRAME_S)
    decoder.advance(np.concatenate([sure, logits_for("|"), unsure[:0]]), logits_for(""))
    decoder.advance(logits_for("HH", peak=np.log(9.0) + 0.0), logits_for(""))
    words = decoder.end_segment().words
    assert words[0].confidence == pytest.approx(1.0)
    # peak ln 9 over 9 zero logits: 9 / (9 + 9) = 0.5 on each of the two frames
    assert words[1].confidence == pytest.approx(0.5, abs=1e-6)
    _, probs = best_path(unsure)
    assert probs[0] == pytest.approx(1 / len(VOCAB.tokens))


def test_segments_start_fresh() -> None:
    decoder = GreedyCtcDecoder(VOCAB, FRAME_S)
    decoder.advance(logits_for("A_B"), logits_for(""))
    assert decoder.end_segment().text == "AB"
    hyp = decoder.advance(logits_for("_C"), logits_for("A"))
    assert hyp == Hypothesis("C", "A")
    segment = decoder.end_segment()
    assert segment.text == "C"
    assert segment.words[0].start == pytest.approx(0.08)  # frame 4 of the stream
    assert decoder.end_segment().text == ""
