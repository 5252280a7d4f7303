"""Vosk's ``max_alternatives``: n-best finals from the beam search, the best path when greedy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamasr.server.arrays import Logits
from streamasr.server.errors import InvalidFieldError, StreamConfigError
from streamasr.server.events import Alternative, Final, Hypothesis, Partial, Segment, Word
from streamasr.server.manifest import Vocabulary
from streamasr.server.options.decoding import MAX_ALTERNATIVES, BeamSettings, DecodingOptions
from streamasr.server.protocol.vosk import VoskReplies, parse_vosk_text

from .service_util import ServerThread, encode, read_mono, server_config, vosk_lockstep
from .test_conversation import EOF, Flow, segment

# -- the reply (no decoder) -----------------------------------------------------------------------


def word(text: str, start: float, confidence: float = 0.8) -> Word:
    return Word(text, start, start + 0.2, confidence)


def nbest_segment(index: int, texts: list[tuple[str, float]], start: float = 0.0) -> Segment:
    """A beam-search segment whose alternatives are ``texts`` (text, confidence), best first."""
    alternatives = tuple(
        Alternative(text, conf, tuple(word(w, start + 0.3 * i) for i, w in enumerate(text.split())))
        for text, conf in texts
    )
    best = alternatives[0]
    return Segment(index, best.text, best.words, start, start + 1.0, "endpoint", alternatives)


def test_a_greedy_final_has_one_alternative_the_best_path() -> None:
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


def test_the_config_asks_the_stream_for_its_n_best() -> None:
    flow = Flow("vosk")
    config = {"sample_rate": 16000, "max_alternatives": 3, "phrase_list": ["cat"]}
    flow.send(json.dumps({"config": config}))
    flow.send(bytes(3200))
    decoding = flow.opened[0].options.decoding
    assert decoding == DecodingOptions(hotwords=("cat",), alternatives=3)


@pytest.mark.parametrize("count", [None, 0, 1])
def test_without_a_list_to_keep_the_stream_keeps_none(count: int | None) -> None:
    flow = Flow("vosk")
    config = {} if count is None else {"max_alternatives": count}
    flow.send(json.dumps({"config": config}))
    flow.send(bytes(3200))
    assert flow.opened[0].options.decoding is None


def test_n_best_entries_carry_their_own_text_confidence_and_words() -> None:
    final = Final(nbest_segment(0, [("the cat", 0.7), ("the cap", 0.2), ("a cat", 0.05)]))
    reply = VoskReplies(alternatives=3).final([final])
    entries = reply["alternatives"]
    assert [(e["text"], e["confidence"]) for e in entries] == [
        ("the cat", 0.7),
        ("the cap", 0.2),
        ("a cat", 0.05),
    ]
    assert [w["word"] for w in entries[1]["result"]] == ["the", "cap"]
    assert set(reply) == {"alternatives"}


def test_without_words_the_entries_have_no_result() -> None:
    """As vosk-api: an alternative's ``result`` only when words are on."""
    final = Final(nbest_segment(0, [("the cat", 0.7), ("the cap", 0.2)]))
    entries = VoskReplies(words=False, alternatives=3).final([final])["alternatives"]
    assert [set(e) for e in entries] == [{"text", "confidence"}] * 2


def test_segments_of_one_reply_are_joined_rank_by_rank() -> None:
    first = nbest_segment(0, [("the cat", 0.5), ("the cap", 0.25), ("a cat", 0.25)])
    second = nbest_segment(1, [("sat", 0.8), ("sad", 0.2)], start=1.0)
    entries = VoskReplies(alternatives=2).final([Final(first), Final(second)])["alternatives"]
    assert [(e["text"], e["confidence"]) for e in entries] == [
        ("the cat sat", 0.4),
        ("the cap sad", 0.05),
    ]
    assert [w["word"] for w in entries[1]["result"]] == ["the", "cap", "sad"]
    three = VoskReplies(alternatives=5).final([Final(first), Final(second)])["alternatives"]
    assert [e["text"] for e in three] == ["the cat sat", "the cap sad", "a cat sad"]


def test_an_empty_flush_is_one_empty_alternative_as_vosk_api() -> None:
    assert VoskReplies(alternatives=3).final([]) == {
        "alternatives": [{"text": "", "confidence": 1.0, "result": []}]
    }
    assert VoskReplies(words=False, alternatives=3).final([]) == {
        "alternatives": [{"text": "", "confidence": 1.0}]
    }


def test_without_max_alternatives_the_result_is_plain() -> None:
    reply = VoskReplies().final([Final(segment(0, "hi", 0.0, 1.0))])
    assert set(reply) == {"result", "text"}


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_bad_max_alternatives_is_refused(value: object) -> None:
    with pytest.raises(InvalidFieldError):
        parse_vosk_text(json.dumps({"config": {"max_alternatives": value}}))


def test_a_count_past_the_cap_is_refused_as_a_setting() -> None:
    assert parse_vosk_text('{"config": {"max_alternatives": 1000}}') == parse_vosk_text(
        json.dumps({"config": {"max_alternatives": MAX_ALTERNATIVES}})
    )
    with pytest.raises(StreamConfigError):
        DecodingOptions(alternatives=MAX_ALTERNATIVES + 1)


# -- the beam search ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flashlight() -> None:
    pytest.importorskip("flashlight.lib.text.decoder")  # the lm extra (in dev: CI has it)


VOCAB = Vocabulary(("<pad>", "|", "C", "A", "T", "R", "O"), blank_id=0, word_delimiter="|")


def row(**scores: float) -> np.ndarray:
    out = np.zeros(len(VOCAB.tokens), dtype=np.float32)
    for token, score in scores.items():
        out[VOCAB.tokens.index(token if token != "pad" else "<pad>")] = score
    return out


def ambiguous_cats() -> Logits:
    """'CAT ROT' where the first letter is nearly as much an R and the O nearly an A."""
    rows = [row(C=6.0, R=5.5), row(pad=6.0), row(A=6.0), row(pad=6.0), row(T=6.0)]
    rows += [row(**{"|": 6.0}), row(R=6.0), row(pad=6.0), row(O=6.0, A=5.0), row(T=6.0)]
    rows += [row(pad=6.0)] * 2
    return np.stack(rows)


def decode(logits: Logits, nbest: int, block: int = 3) -> Any:
    from streamasr.server.decoding.beam import BeamCtcDecoder

    decoder = BeamCtcDecoder(VOCAB, 0.02, BeamSettings(beam_width=8), nbest=nbest)
    for start in range(0, logits.shape[0], block):  # streamed: beams kept between windows
        decoder.advance(logits[start : start + block], logits[:0])
    return decoder.end_segment()


@pytest.mark.usefixtures("flashlight")
def test_the_beams_give_distinct_texts_best_first() -> None:
    logits = ambiguous_cats()
    plain = decode(logits, nbest=1)
    assert plain.text == "CAT ROT" and plain.alternatives == ()
    nbest = decode(logits, nbest=3)
    texts = [a.text for a in nbest.alternatives]
    assert texts[0] == nbest.text == plain.text and nbest.words == plain.words
    assert len(texts) == 3 == len(set(texts)) and {"RAT ROT", "CAT RAT"} <= set(texts)
    confidences = [a.confidence for a in nbest.alternatives]
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1.0 + 1e-6
    assert confidences[0] > confidences[1] > 0.1  # an even split of C and R would be equal
    for alternative in nbest.alternatives:
        assert " ".join(w.text for w in alternative.words) == alternative.text
    rat = nbest.alternatives[texts.index("RAT ROT")]
    assert rat.words[0].start == plain.words[0].start == 0.0
    assert rat.words[1] == plain.words[1]  # the same frames of the same word


@pytest.mark.usefixtures("flashlight")
def test_the_count_bounds_the_list() -> None:
    assert len(decode(ambiguous_cats(), nbest=2).alternatives) == 2


# -- a real server --------------------------------------------------------------------------------

RARE_UTTERANCE = 24
"""tts-024 ('... THE SHOULDER OF THE DROMEDARY ...'), as tests/test_hotwords.py."""


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    with ServerThread(server_config(fixture_export, precision="fp32")) as running:
        yield running


@pytest.fixture(scope="module")
def pcm(tts_set: list[tuple[Path, str]]) -> bytes:
    samples, _ = read_mono(tts_set[RARE_UTTERANCE][0])
    return encode(samples, "s16le")


def finals(replies: list[dict[str, Any]], final: dict[str, Any]) -> list[dict[str, Any]]:
    """The results among a lockstep session's replies (partials left out)."""
    return [r for r in [*replies, final] if "partial" not in r]


def exchange(server: ServerThread, pcm: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    url = server.ws_url("/vosk")
    replies, final, code = asyncio.run(vosk_lockstep(url, pcm, 16000, **kwargs))
    assert code == 1000
    return finals(replies, final)


@pytest.mark.usefixtures("flashlight")
def test_a_beam_session_gets_up_to_three_distinct_alternatives(
    server: ServerThread, pcm: bytes
) -> None:
    """phrase_list makes the session's decoder a beam search (hotwords) on a greedy server."""
    phrases = ["dromedary"]
    plain = [r["text"] for r in exchange(server, pcm, phrases=phrases) if r["text"]]
    nbest = exchange(server, pcm, phrases=phrases, alternatives=3)
    lists = [r["alternatives"] for r in nbest if r["alternatives"][0]["text"]]
    assert plain and [a[0]["text"] for a in lists] == plain
    assert "DROMEDARY" in " ".join(plain).split()
    for alternatives in lists:
        texts = [a["text"] for a in alternatives]
        assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
        confidences = [a["confidence"] for a in alternatives]
        assert confidences == sorted(confidences, reverse=True)
        for a in alternatives:
            assert " ".join(w["word"] for w in a["result"]) == a["text"]
    assert any(len(a) > 1 for a in lists)  # a real n-best, not the best path alone


def test_a_greedy_session_gets_the_best_path_alone(server: ServerThread, pcm: bytes) -> None:
    plain = [r["text"] for r in exchange(server, pcm) if r["text"]]
    nbest = exchange(server, pcm, alternatives=3)
    lists = [r["alternatives"] for r in nbest if r["alternatives"][0]["text"]]
    assert plain and [len(a) for a in lists] == [1] * len(plain)
    assert [a[0]["text"] for a in lists] == plain
