"""An engine's punctuation stage: the model, the batcher every stream shares and the pool
where streams caption off the event loop.

The model is ``--punctuation DIR`` (an ``asr-export --punctuation`` output) or, without the
flag, a ``punctuation/`` folder inside the model's export, so ``--model`` alone brings it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streamasr.server.decoding.punctuation.batcher import PunctuationBatcher
from streamasr.server.decoding.punctuation.manifest import MANIFEST_FILE
from streamasr.server.decoding.punctuation.model import PunctuationModel

log = logging.getLogger(__name__)

FOLDER_IN_EXPORT = "punctuation"
"""Where a model's export may carry its punctuation model."""
CAPTION_THREADS = 4
"""Streams captioning at once off the loop (their model calls are batched together)."""


class Punctuation:
    """A loaded punctuation model, shared by the streams of one engine."""

    def __init__(self, folder: Path, precision: str = "int8") -> None:
        self.folder = folder
        self.model = PunctuationModel.open(folder, precision)
        self.batcher = PunctuationBatcher(self.model.punctuate_batch)
        self.pool = ThreadPoolExecutor(CAPTION_THREADS, thread_name_prefix="asr-caption")

    @property
    def name(self) -> str:
        return self.model.manifest.source

    @classmethod
    def find(cls, explicit: Path | None, export: Path) -> Punctuation | None:
        """``explicit`` (``--punctuation``), else the export's own ``punctuation/``, else None."""
        if explicit is not None:
            return cls(explicit)
        inside = export / FOLDER_IN_EXPORT
        if (inside / MANIFEST_FILE).is_file():
            log.info("punctuation model found in the export: %s", inside)
            return cls(inside)
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.batcher.close()
