"""Where a segment ends: after enough trailing non-speech, at a length cap, or at end of stream.

The endpointer reads the best-path labels of committed frames, one frame at a time, so that a
stream and the offline run of the same audio cut their segments at the same frames whatever the
window size. A frame is *speech* when its best symbol is a letter (not the blank, the word
delimiter or a special symbol). At the length cap the cut waits (at most 1 s) for a word boundary:
a word-delimiter frame or a 100 ms pause, so that words are not split between segments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streamasr.server.arrays import Labels
from streamasr.server.events import EndReason

MAX_SEGMENT_GRACE_FRAMES = 50
"""Past the length cap the cut waits for a word boundary, at most this many frames (1 s)."""
PAUSE_FRAMES = 5
"""A run of this many non-speech frames (100 ms) counts as a word boundary at the length cap."""


@dataclass(frozen=True)
class Cut:
    """End the segment after frame ``at - 1`` of the scanned block."""

    at: int
    reason: EndReason


class Endpointer:
    """Per-frame segment end detection for one stream."""

    def __init__(
        self,
        endpoint_frames: int,
        max_segment_frames: int,
        speech_ids: Iterable[int],
        delimiter_id: int | None = None,
    ) -> None:
        self.endpoint_frames = endpoint_frames
        self.max_segment_frames = max_segment_frames
        self._speech = frozenset(speech_ids)
        self._delimiter = delimiter_id
        self._frames = 0
        """Frames in the current segment."""
        self._silence = 0
        """Trailing non-speech frames in the current segment."""
        self._has_speech = False

    @property
    def has_speech(self) -> bool:
        """Whether the current segment holds any speech frame."""
        return self._has_speech

    def scan(self, labels: Labels) -> Cut | None:
        """Read frames in order until one ends the segment; the caller must then :meth:`reset`
        and scan the frames after the cut. ``None``: no end in this block (all frames read)."""
        for i, label in enumerate(labels.tolist()):
            self._frames += 1
            if label in self._speech:
                self._has_speech = True
                self._silence = 0
            else:
                self._silence += 1
            if self._has_speech and self._silence >= self.endpoint_frames:
                return Cut(i + 1, "endpoint")
            over = self._frames - self.max_segment_frames
            boundary = label == self._delimiter or self._silence >= PAUSE_FRAMES
            if over >= 0 and (boundary or over >= MAX_SEGMENT_GRACE_FRAMES):
                return Cut(i + 1, "max_segment")
        return None

    def reset(self) -> None:
        """Start a new segment at the next frame."""
        self._frames = 0
        self._silence = 0
        self._has_speech = False
