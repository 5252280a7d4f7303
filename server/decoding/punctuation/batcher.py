"""One punctuation model shared by every stream: requests of all sessions batched off the loop.

A stream's :class:`~.stable.StablePunctuator` calls :meth:`PunctuationBatcher.label` (from a
worker thread, never the event loop): the word list joins a bounded queue and the caller waits
for its labels. One thread takes what has queued (up to ``max_batch`` lists, waiting at most
``max_wait_s`` after the first for others to join) and runs them in one onnxruntime call, so
sessions that freeze words at the same time share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from streamasr.server.decoding.punctuation.labels import WordLabel
from streamasr.server.errors import SchedulerClosedError, SchedulerOverloadedError

log = logging.getLogger(__name__)

BatchLabeller = Callable[[Sequence[Sequence[str]]], list[list[WordLabel]]]
"""Labels of several word lists in one call (:meth:`~.model.PunctuationModel.punctuate_batch`)."""

MAX_BATCH = 16
MAX_WAIT_S = 0.002
MAX_QUEUE = 1024


class PunctuationBatcher:
    """Batches word lists of all streams onto one model (see the module docstring)."""

    def __init__(
        self,
        labeller: BatchLabeller,
        *,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self._labeller = labeller
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._queue: deque[tuple[Sequence[str], Future[list[WordLabel]]]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.calls = 0
        """Model calls so far (each one batch)."""
        self.lists = 0
        """Word lists labelled so far."""
        self._thread = threading.Thread(target=self._work, name="asr-punctuation", daemon=True)
        self._thread.start()

    def submit(self, words: Sequence[str]) -> Future[list[WordLabel]]:
        """Queue one word list; the future gets one label per word."""
        future: Future[list[WordLabel]] = Future()
        with self._cond:
            if self._closed:
                raise SchedulerClosedError()
            if len(self._queue) >= self.max_queue:
                raise SchedulerOverloadedError(len(self._queue))
            self._queue.append((words, future))
            self._cond.notify()
        return future

    def label(self, words: Sequence[str]) -> list[WordLabel]:
        """One label per word (blocking: call it from a worker thread)."""
        return self.submit(words).result()

    def close(self) -> None:
        """Label what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _take(self) -> list[tuple[Sequence[str], Future[list[WordLabel]]]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return []
            deadline = time.monotonic() + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            count = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _work(self) -> None:
        while batch := self._take():
            live = [(words, f) for words, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                labels = self._labeller([words for words, _ in live])
            except Exception as exc:  # reaches the waiting streams, not the thread
                log.exception("punctuation batch of %d failed", len(live))
                for _, future in live:
                    future.set_exception(exc)
                continue
            self.calls += 1
            self.lists += len(live)
            for (_, future), result in zip(live, labels, strict=True):
                future.set_result(result)
