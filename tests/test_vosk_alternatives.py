"""Vosk's ``max_alternatives``: finals in the ``alternatives`` shape (the best path only)."""

from __future__ import annotations

import json

import pytest

from streamasr.server.errors import InvalidFieldError
from streamasr.server.events import Final, Hypothesis, Partial
from streamasr.server.protocol.vosk import VoskReplies, parse_vosk_text

from .test_conversation import EOF, Flow, segment


def test_max_alternatives_gives_finals_in_the_alternatives_shape() -> None:
    flow = Flow("vosk")
    flow.feed_events.append([Partial(0, Hypothesis("hel", "lo"), 0.5)])
    flow.flush_events = [Final(segment(0, "hello world", 0.0, 1.0))]
    flow.send(json.dumps({"config": {"sample_rate": 16000, "max_alternatives": 3}}))
    flow.send(bytes(3200), EOF)
    assert flow.sent[0] == {"partial": "hello"}
    (alternative,) = flow.sent[1]["alternatives"]
    assert alternative["text"] == "hello world" and alternative["confidence"] == 0.9
    assert [w["word"] for w in alternative["result"]] == ["hello", "world"]
    assert set(alternative["result"][0]) == {"word", "start", "end", "conf"}


def test_without_max_alternatives_the_result_is_plain() -> None:
    reply = VoskReplies().final([Final(segment(0, "hi", 0.0, 1.0))])
    assert set(reply) == {"result", "text"}


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_bad_max_alternatives_is_refused(value: object) -> None:
    with pytest.raises(InvalidFieldError):
        parse_vosk_text(json.dumps({"config": {"max_alternatives": value}}))
