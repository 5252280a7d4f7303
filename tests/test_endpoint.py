"""Endpointing on best-path labels: trailing non-speech, the length cap, word boundaries."""

from __future__ import annotations

import numpy as np

from streamasr.server.engine.endpoint import MAX_SEGMENT_GRACE_FRAMES, Cut, Endpointer

BLANK, DELIM, A, B = 0, 4, 5, 6
LETTERS = (A, B)


def labels(*runs: tuple[int, int]) -> np.ndarray:
    return np.array([label for label, count in runs for _ in range(count)], dtype=np.int64)


def endpointer(endpoint: int = 10, cap: int = 1000) -> Endpointer:
    return Endpointer(endpoint, cap, LETTERS, DELIM)


def cuts(ep: Endpointer, stream: np.ndarray, block: int) -> list[tuple[int, str]]:
    """Absolute frame positions of the cuts, scanning ``stream`` in blocks."""
    found = []
    for start in range(0, stream.size, block):
        chunk = stream[start : start + block]
        position = 0
        while (cut := ep.scan(chunk[position:])) is not None:
            position += cut.at
            found.append((start + position, cut.reason))
            ep.reset()
    return found


def test_silence_after_speech_ends_the_segment() -> None:
    stream = labels((BLANK, 30), (A, 3), (BLANK, 2), (DELIM, 1), (BLANK, 6), (B, 2), (BLANK, 25))
    # the run of non-speech after the first word is 9 frames: not enough; after B it reaches 10
    assert cuts(endpointer(), stream, block=1000) == [(30 + 3 + 9 + 2 + 10, "endpoint")]


def test_cuts_do_not_depend_on_block_size() -> None:
    rng = np.random.default_rng(0)
    stream = rng.choice(
        [BLANK, BLANK, BLANK, DELIM, A, B], size=3000, p=[0.5, 0.2, 0.1, 0.05, 0.1, 0.05]
    )
    stream[500:540] = BLANK
    stream[1500:1700] = BLANK
    reference = cuts(endpointer(endpoint=25, cap=400), stream, block=3000)
    assert reference
    for block in (1, 7, 50, 333):
        assert cuts(endpointer(endpoint=25, cap=400), stream, block) == reference


def test_leading_silence_never_ends_a_segment() -> None:
    ep = endpointer()
    assert ep.scan(labels((BLANK, 500), (DELIM, 3))) is None
    assert not ep.has_speech


def test_length_cap_waits_for_a_word_boundary() -> None:
    ep = endpointer(endpoint=100, cap=20)
    stream = labels((A, 15), (BLANK, 1), (B, 10), (DELIM, 1), (A, 5))
    assert ep.scan(stream) == Cut(27, "max_segment")


def test_length_cap_cuts_anyway_after_the_grace() -> None:
    ep = endpointer(endpoint=100, cap=20)
    stream = np.array([A, B] * 200, dtype=np.int64)
    assert ep.scan(stream) == Cut(20 + MAX_SEGMENT_GRACE_FRAMES, "max_segment")
