"""Punctuation without a model: label layouts, word preservation, chunking, the streaming rule."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from streamasr.server.decoding.punctuation.labels import (
    MARKS,
    UnknownLayoutError,
    WordLabel,
    apply_all,
    decode,
    detect_layout,
    resolve_case,
)
from streamasr.server.decoding.punctuation.model import chunk_spans
from streamasr.server.decoding.punctuation.stable import (
    CommittedWordsChangedError,
    FrozenWord,
    StablePunctuator,
)

MARK_CASE = ["OO", "OU", ".O", ".U", ",O", ",U", "?O", "?U", "!O", "!U", ":O", ":U"]
FELFLARE = [*MARK_CASE, ";O", ";U", "'O", "'U", "-O", "-U"]
FULLSTOP = ["0", ".", ",", "?", "-", ":"]
VOCAB = ["HELLO", "I", "I'M", "DON'T", "WORLD", "A", "OK", "THE", "Q", "X'Y"]


def test_layouts_are_detected() -> None:
    assert detect_layout(MARK_CASE) == "mark+case"
    assert detect_layout(FELFLARE) == "mark+case"
    assert detect_layout(FULLSTOP) == "punct-only"


@pytest.mark.parametrize(
    "labels", [["B-PER", "I-PER", "O"], ["LABEL_0", "LABEL_1"], [], ["OO", "XU"], [".", ","]]
)
def test_unknown_layouts_are_refused(labels: list[str]) -> None:
    with pytest.raises(UnknownLayoutError, match=r"supported: 'mark\+case'.*'punct-only'"):
        detect_layout(labels)


def test_marks_captions_lack_map_to_none() -> None:
    assert decode("mark+case", ";U") == WordLabel("", True)
    assert decode("mark+case", "-O") == WordLabel("", False)
    assert decode("mark+case", "?U") == WordLabel("?", True)
    assert decode("punct-only", "-") == WordLabel("", None)
    assert decode("punct-only", "0") == WordLabel("", None)
    assert decode("punct-only", ":") == WordLabel(":", None)


def test_case_rule_for_punct_only() -> None:
    words = ["SO", "I", "SAID", "NO", "THEN", "I'M", "OFF"]
    marks = ["", "", "", ".", "", "", "?"]
    labels = resolve_case(words, [WordLabel(m, None) for m in marks], None)
    assert apply_all(words, labels) == ["So", "I", "said", "no.", "Then", "I'm", "off?"]
    after_comma = resolve_case(["WELL"], [WordLabel("", None)], ",")
    assert after_comma == [WordLabel("", False)]
    kept = resolve_case(["WELL", "PARIS"], [WordLabel("", False), WordLabel("", True)], ",")
    assert kept == [WordLabel("", False), WordLabel("", True)], "mid-sentence the model's case"
    start = resolve_case(["WELL", "I"], [WordLabel("", False), WordLabel("", False)], None)
    assert start == [WordLabel("", True)] * 2, "a sentence start and 'i' are always upper"


def test_words_in_are_words_out_for_random_labels() -> None:
    rng = random.Random(3)
    for _ in range(300):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(0, 30))]
        labels = [WordLabel(rng.choice(MARKS), rng.random() < 0.5) for _ in words]
        out = apply_all(words, labels)
        assert len(out) == len(words)
        for word, text, label in zip(words, out, labels, strict=True):
            assert text.lower() == word.lower() + label.mark
            assert text[0].isupper() == bool(label.upper) or not text[0].isalpha()


def test_label_count_must_match() -> None:
    with pytest.raises(ValueError, match="3 words but 2 labels"):
        apply_all(["A", "B", "C"], [WordLabel("", False)] * 2)


@pytest.mark.parametrize("budget", [1, 3, 10, 50])
@pytest.mark.parametrize("overlap", [0, 2, 16])
def test_chunks_cover_every_word_once_within_budget(budget: int, overlap: int) -> None:
    rng = random.Random(budget * 100 + overlap)
    for _ in range(50):
        counts = [rng.choice([0, 1, 1, 1, 2, 3, 12]) for _ in range(rng.randint(0, 80))]
        spans = chunk_spans(counts, budget, overlap)
        kept = [i for s in spans for i in range(s.keep_start, s.keep_end)]
        assert kept == list(range(len(counts)))
        for s in spans:
            assert s.start <= s.keep_start <= s.keep_end <= s.end
            used = sum(min(c, budget) for c in counts[s.start : s.end])
            assert s.end - s.start == 1 or used <= budget


class FakeModel:
    """Labels from the window: a full stop after every word followed by THE (or at the
    window's end), a comma before AND; upper after a full stop. Depends on context, as a
    real model does, so the window matters."""

    def __init__(self) -> None:
        self.windows: list[list[str]] = []

    def __call__(self, words: Sequence[str]) -> list[WordLabel]:
        self.windows.append(list(words))
        out: list[WordLabel] = []
        for i, word in enumerate(words):
            nxt = words[i + 1] if i + 1 < len(words) else None
            mark = "." if nxt in (None, "THE") else "," if nxt == "AND" else ""
            upper = i == 0 or words[i - 1 : i] == [] or out[-1].mark == "." or word == "I"
            out.append(WordLabel(mark, upper))
        return out


def stream(
    punctuator: StablePunctuator, words: list[str], rng: random.Random
) -> list[list[FrozenWord]]:
    """Feed ``words`` as a growing stream; provisional words are sometimes wrong guesses."""
    steps = []
    committed = 0
    while committed < len(words):
        committed = min(len(words), committed + rng.randint(0, 3))
        guess = [rng.choice(VOCAB) for _ in range(rng.randint(0, 4))]
        provisional = words[committed : committed + len(guess)] if rng.random() < 0.5 else guess
        steps.append(punctuator.update(words[:committed], provisional))
    steps.append(punctuator.update(words, final=True))
    return steps


@pytest.mark.parametrize("lookahead", [0, 1, 4])
def test_frozen_words_never_change(lookahead: int) -> None:
    rng = random.Random(lookahead)
    for _ in range(40):
        words = [rng.choice([*VOCAB, "AND", "THE"]) for _ in range(rng.randint(1, 60))]
        punctuator = StablePunctuator(FakeModel(), lookahead=lookahead, context=5)
        seen: list[FrozenWord] = []
        for fresh in stream(punctuator, words, rng):
            assert punctuator.frozen[: len(seen)] == seen, "a frozen word changed"
            assert [f.index for f in fresh] == list(range(len(seen), len(seen) + len(fresh)))
            seen += fresh
        assert [f.word for f in seen] == words
        assert [f.text.rstrip(".,?!:").lower() for f in seen] == [w.lower() for w in words]


def test_a_word_freezes_only_with_lookahead_words_after_it() -> None:
    punctuator = StablePunctuator(FakeModel(), lookahead=2)
    assert punctuator.update(["A", "B"], []) == []
    assert [f.word for f in punctuator.update(["A", "B"], ["C"])] == ["A"]
    assert [f.word for f in punctuator.update(["A", "B", "C"], ["D"])] == ["B"]
    assert punctuator.update(["A", "B", "C"], []) == [], "provisional words may vanish"
    assert [f.word for f in punctuator.update(["A", "B", "C", "D"], final=True)] == ["C", "D"]
    assert [f.text for f in punctuator.frozen] == ["A", "b", "c", "d."]


def test_only_committed_words_freeze() -> None:
    punctuator = StablePunctuator(FakeModel(), lookahead=1)
    assert [f.word for f in punctuator.update(["A"], ["B", "C", "D", "E"])] == ["A"]


def test_the_window_is_bounded() -> None:
    model = FakeModel()
    punctuator = StablePunctuator(model, lookahead=3, context=4, max_decide=5)
    words = [f"W{i}" for i in range(40)]
    punctuator.update(words[:30], words[30:])
    punctuator.update(words, final=True)
    assert max(len(w) for w in model.windows) <= 4 + 5 + 3
    assert len(punctuator.frozen) == 40


def test_lookahead_changes_the_decision_and_context_carries_over() -> None:
    punctuator = StablePunctuator(FakeModel(), lookahead=1)
    punctuator.update(["SEE", "THE"], [], final=False)
    assert [f.text for f in punctuator.frozen] == ["See."]
    punctuator.update(["SEE", "THE", "END"], final=True)
    following = punctuator.next_segment()
    model = following.labeller
    assert isinstance(model, FakeModel)
    following.update(["AND", "SO"], final=True)
    assert model.windows[-1][:3] == ["SEE", "THE", "END"], "the last segment is the context"


def test_committed_words_may_only_grow() -> None:
    punctuator = StablePunctuator(FakeModel(), lookahead=0)
    punctuator.update(["A", "B"])
    with pytest.raises(CommittedWordsChangedError, match="committed word 1 was 'B'"):
        punctuator.update(["A", "C"])
    punctuator.update(["A", "B"], final=True)
    with pytest.raises(ValueError, match="has ended"):
        punctuator.update(["A", "B", "C"])


def test_a_labeller_that_drops_words_is_an_error() -> None:
    punctuator = StablePunctuator(lambda words: [WordLabel("", False)], lookahead=0)
    with pytest.raises(ValueError, match="gave 1 labels for 2 words"):
        punctuator.update(["A", "B"], final=True)
