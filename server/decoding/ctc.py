"""Greedy CTC decoding, shared by every model family and driven by the manifest."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from streamasr.server.arrays import Logits
from streamasr.server.manifest import Vocabulary


def greedy_ids(logits: Logits) -> NDArray[np.int64]:
    """Best symbol per frame."""
    return np.asarray(np.argmax(logits, axis=-1), dtype=np.int64)


def collapse(ids: NDArray[np.int64], blank_id: int) -> list[int]:
    """CTC collapse: merge repeats, then drop blanks."""
    if ids.size == 0:
        return []
    keep = np.ones(ids.shape[0], dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    merged = ids[keep]
    return [int(i) for i in merged[merged != blank_id]]


def is_special_token(token: str) -> bool:
    """``<s>``, ``</s>``, ``<unk>``, ``<pad>``: symbols that carry no text."""
    return len(token) > 1 and token.startswith("<") and token.endswith(">")


def ids_to_text(ids: list[int], vocab: Vocabulary) -> str:
    """Join symbols into text; the word delimiter becomes a single space."""
    return pieces_to_text(text_pieces(vocab), ids)


def text_pieces(vocab: Vocabulary) -> tuple[str, ...]:
    """What each symbol writes: a space for the word delimiter, nothing for special tokens
    (``<s>``, ``</s>``, ``<unk>``), the token itself otherwise."""
    return tuple(
        " " if token == vocab.word_delimiter else "" if is_special_token(token) else token
        for token in vocab.tokens
    )


def pieces_to_text(pieces: tuple[str, ...], ids: list[int]) -> str:
    """:func:`ids_to_text` with the vocabulary's :func:`text_pieces` computed once (a stream's
    decoder rewrites its segment's text every window)."""
    return " ".join("".join([pieces[i] for i in ids]).split())


def greedy_text(logits: Logits, vocab: Vocabulary) -> str:
    """Greedy transcript of one utterance's logits."""
    return ids_to_text(collapse(greedy_ids(logits), vocab.blank_id), vocab)
