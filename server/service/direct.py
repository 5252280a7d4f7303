"""Audio taken in the connection's data callback, without waking the session's task.

While a :class:`~.session.Session` of a dialect that ``joins_audio`` (protocol v1, whose replies
follow the audio's events, not its messages; Vosk answers every message and the realtime
dialect takes no binary audio, so theirs keep websockets' path) waits for a message with nothing
queued, its connection offers each whole binary message to :meth:`DirectAudio.take`, in the
socket's data callback (:mod:`.wire.transport`, :mod:`.wire.framing`). Taking it runs the
conversation and the stream's :meth:`~streamasr.server.engine.stream.Stream.feed_now` at once;
whatever that leads to that must be awaited (windows to decode, a message to send, a close)
comes back as steps that the session hands over to its task, and nothing more is taken until the
task waits again.

Between two such runs, plain 16-bit frames gather in a **lane** while the stream would only
hold them (:meth:`~streamasr.server.engine.stream.Stream.hold_room`):
the frame that fills the room hands the lane in as one message, received when its last frame
came. The engine sees the same samples at the same frame, so windows, events and their timing
are those of one frame at a time, for one conversation and stream call per 100 ms instead of
per frame. A message that cannot join (text, an odd size, past the conversation's deadline)
first hands the lane in, so order is kept.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from streamasr.server.engine.stream import Fed, Stream
from streamasr.server.protocol.conversation import Action, Conversation, Feed, State


@dataclass(frozen=True)
class Decode:
    """Decode the windows a frame taken directly completed (the rest of its :class:`Feed`)."""

    fed: Fed


Step: TypeAlias = Action | Decode


class DirectAudio:
    """One session's direct intake: the lane and the synchronous run of taken audio."""

    def __init__(
        self,
        conversation: Callable[[], Conversation],
        stream: Callable[[], Stream | None],
        clock: Callable[[], float],
    ) -> None:
        self._conversation = conversation
        self._stream = stream
        self._clock = clock
        self._lane = bytearray()
        self._lane_at = 0.0
        """When the lane's last frame came (the clock's time)."""
        self._room = 0
        """Bytes the lane gathers before it is handed in (0: frames are not gathered)."""
        self._until = -math.inf
        """The conversation's deadline when the lane opened: frames after it are not gathered."""

    def take(self, data: bytes) -> tuple[bool, list[Step]]:
        """Take a binary message now (or not: False, it waits in websockets' queue for the
        task), and the steps left for the task (most often none)."""
        now = self._clock()
        if self._room and data and not len(data) & 1 and now < self._until:
            self._lane += data
            self._lane_at = now
            if len(self._lane) < self._room:
                return True, []
            return True, self._hand_in(reopen=True)
        steps = self._hand_in(reopen=True)
        conversation = self._conversation()
        if steps or conversation.state is not State.STREAMING or now >= conversation.deadline():
            return False, steps  # the task first (the lane's steps, then this message)
        return True, self._run(data, now, reopen=True)

    def hand_in(self) -> list[Step]:
        """Before the task does anything: the lane handed to the conversation as one message,
        and the steps that leaves. No frame gathers again until the next direct run (the task
        may feed the stream meanwhile)."""
        return self._hand_in(reopen=False)

    def _hand_in(self, *, reopen: bool) -> list[Step]:
        self._room = 0
        if not self._lane:
            return []
        data = bytes(self._lane)
        self._lane.clear()
        return self._run(data, self._lane_at, reopen=reopen)

    def _run(self, data: bytes, at: float, *, reopen: bool) -> list[Step]:
        conversation = self._conversation()
        try:
            steps = self._run_now(conversation.receive(data, at))
        except Exception as exc:
            steps = list(conversation.fail(exc))
        if reopen and not steps:
            self._open_lane(conversation)
        return steps

    def _run_now(self, actions: list[Action]) -> list[Step]:
        """Carry out the actions that need no waiting (feeds that complete no window); the
        steps left from the first one that does."""
        steps: deque[Step] = deque(actions)
        conversation = self._conversation()
        while steps and isinstance(steps[0], Feed):
            feed = steps.popleft()
            assert isinstance(feed, Feed)
            stream = self._stream()
            if stream is None:  # pragma: no cover - a conversation opens before it feeds
                raise RuntimeError("the conversation fed a stream it did not open")
            try:
                fed = stream.feed_now(feed.data)
            except Exception as exc:
                return list(conversation.fail(exc))
            if fed.windows:
                steps.appendleft(Decode(fed))
                break
            steps.extend(conversation.stream_events(fed.events))
        return list(steps)

    def _open_lane(self, conversation: Conversation) -> None:
        stream = self._stream()
        if conversation.joins_audio and conversation.state is State.STREAMING and stream:
            self._room = stream.hold_room()
            self._until = conversation.deadline()
