"""An exported punctuation model run with onnxruntime and the ``tokenizers`` library.

Word lists go in (ASR words, any case), one :class:`~.labels.WordLabel` per word comes out.
Several word lists share one onnxruntime call; a list longer than the model's maximum length
is cut into overlapping chunks, each word taking its label from the chunk where it has the
most context on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Tokenizer

from .labels import MARKS, Layout, WordLabel, apply_all, close_segment, decoder, resolve_case
from .manifest import PunctuationManifest, read_manifest

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 16
"""Words two neighbouring chunks share."""
DEFAULT_MAX_BATCH = 32
"""Chunks per onnxruntime call."""
NO_LABEL = WordLabel("", None)
"""A word the tokenizer turns into no token keeps no mark."""


@dataclass(frozen=True)
class Span:
    """A chunk ``[start, end)`` of a word list; its labels are kept for ``[keep_start,
    keep_end)``."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def chunk_spans(counts: Sequence[int], budget: int, overlap: int) -> list[Span]:
    """Cut words of ``counts`` sub-tokens each into chunks of at most ``budget`` sub-tokens
    (a word longer than ``budget`` alone is clipped to it) that overlap by up to ``overlap``
    words; every word is kept by exactly one chunk, in order."""
    if budget < 1:
        raise ValueError(f"budget must be at least 1, got {budget}")
    n = len(counts)
    spans: list[Span] = []
    start = keep_start = 0
    while start < n or not spans:
        end, used = start, 0
        while end < n and (end == start or used + min(counts[end], budget) <= budget):
            used += min(counts[end], budget)
            end += 1
        if end >= n:
            spans.append(Span(start, n, keep_start, n))
            return spans
        following = max(start + 1, end - overlap)
        keep_end = max(keep_start, (following + end) // 2)
        spans.append(Span(start, end, keep_start, keep_end))
        start, keep_start = following, keep_end
    return spans


class PunctuationModel:
    """A loaded export: tokenizer, onnxruntime session and label decoder.

    ``mark_penalty`` is subtracted from the logits of every label with a mark (or, given as
    a mapping, of the labels with that mark) before the argmax: above 0 it trades recall of
    marks for precision (docs/punctuation.md).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        manifest: PunctuationManifest,
        *,
        overlap: int = DEFAULT_OVERLAP,
        max_batch: int = DEFAULT_MAX_BATCH,
        mark_penalty: float | Mapping[str, float] = 0.0,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.layout: Layout = manifest.layout
        self.overlap = overlap
        self.max_batch = max_batch
        self._labels = decoder(manifest.layout, dict(enumerate(manifest.labels)))
        per_mark = (
            mark_penalty
            if isinstance(mark_penalty, Mapping)
            else dict.fromkeys(MARKS[1:], mark_penalty)
        )
        self._penalty = np.array(
            [per_mark.get(label.mark, 0.0) if label.mark else 0.0 for label in self._labels],
            dtype=np.float32,
        )
        self._prefix, self._suffix = _specials(tokenizer)
        self.budget = manifest.max_length - len(self._prefix) - len(self._suffix)
        padding = tokenizer.padding
        self._pad = int(padding["pad_id"]) if padding else _pad_id(tokenizer)

    @classmethod
    def open(
        cls, folder: Path, precision: str = "int8", *, threads: int = 1, **options: Any
    ) -> PunctuationModel:
        """Open ``folder`` (an ``asr-export --punctuation`` output) at ``precision``, falling
        back to the other precision when that file was not kept."""
        manifest = read_manifest(folder)
        entry = manifest.models.get(precision) or next(iter(manifest.models.values()))
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = threads
        settings.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(folder / entry.file), settings, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(folder / manifest.tokenizer.file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        log.info("punctuation model %s (%s, %s)", manifest.source, entry.file, manifest.layout)
        return cls(session, tokenizer, manifest, **options)

    def punctuate_batch(self, batch: Sequence[Sequence[str]]) -> list[list[WordLabel]]:
        """One label per word of each list. With the ``punct-only`` layout ``upper`` is
        ``None`` (see :func:`~.labels.resolve_case`)."""
        lists = [[w.lower() for w in words] for words in batch if words]
        if not lists:
            return [[] for _ in batch]
        pieces = self.tokenizer.encode_batch(lists, is_pretokenized=True, add_special_tokens=False)
        chunks: list[tuple[int, Span, list[list[int]]]] = []
        for index, encoding in enumerate(pieces):
            per_word = _ids_per_word(encoding.ids, encoding.word_ids, len(lists[index]))
            counts = [len(ids) for ids in per_word]
            for span in chunk_spans(counts, self.budget, self.overlap):
                chunks.append((index, span, per_word[span.start : span.end]))
        results: list[list[WordLabel]] = [[NO_LABEL] * len(words) for words in lists]
        for k in range(0, len(chunks), self.max_batch):
            self._run(chunks[k : k + self.max_batch], results)
        answers = iter(results)
        return [next(answers) if words else [] for words in batch]

    def __call__(self, words: Sequence[str]) -> list[WordLabel]:
        """The labeller of one word list (what :class:`~.stable.StablePunctuator` calls)."""
        return self.punctuate_batch([words])[0]

    def punctuate(self, words: Sequence[str], end_mark: str = ".") -> list[str]:
        """A whole segment as caption words (the case rule applied for ``punct-only``; the last
        word gets ``end_mark`` when it has no mark)."""
        labels = resolve_case(words, close_segment(self(words), end_mark), None)
        return apply_all(words, labels)

    def _run(
        self, chunks: list[tuple[int, Span, list[list[int]]]], results: list[list[WordLabel]]
    ) -> None:
        rows: list[list[int]] = []
        firsts: list[list[int]] = []
        for _, _, words in chunks:
            row = list(self._prefix)
            first = []
            for ids in words:
                first.append(len(row) if ids else -1)
                row.extend(ids[: self.budget])
            rows.append(row + list(self._suffix))
            firsts.append(first)
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds: dict[str, NDArray[np.int64]] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.manifest.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        logits: NDArray[np.float32] = self.session.run(None, feeds)[0]
        best = (logits - self._penalty).argmax(axis=-1)
        for (index, span, _), first, classes in zip(chunks, firsts, best, strict=True):
            for offset in range(span.keep_start - span.start, span.keep_end - span.start):
                position = first[offset]
                if position >= 0:
                    results[index][span.start + offset] = self._labels[int(classes[position])]


def _ids_per_word(ids: Sequence[int], word_ids: Sequence[int | None], n: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(n)]
    for token, word in zip(ids, word_ids, strict=True):
        if word is not None:
            out[word].append(token)
    return out


def _specials(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single sequence."""
    encoding: Any = tokenizer.encode(["a"], is_pretokenized=True, add_special_tokens=True)
    positions = [i for i, w in enumerate(encoding.word_ids) if w is not None]
    ids = list(encoding.ids)
    return ids[: positions[0]], ids[positions[-1] + 1 :]


def _pad_id(tokenizer: Tokenizer) -> int:
    for name in ("[PAD]", "<pad>"):
        token = tokenizer.token_to_id(name)
        if token is not None:
            return int(token)
    return 0
