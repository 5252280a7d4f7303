"""Captions: punctuation and casing on the streamed text, stable word by word, on every dialect."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from streamasr.server.decoding.punctuation.labels import WordLabel
from streamasr.server.engine.captions import Captioner
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import read_audio, stream_array
from streamasr.server.events import Caption, Final, Hypothesis, Partial, Segment
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.options.stream import StreamOptions
from tests.service_util import ServerThread, server_config, stream_v1, vosk_lockstep

MARKS = re.compile(r"[.,?!:]")


def plain(words: Sequence[str]) -> list[str]:
    """Caption words back to the recognised spelling (marks off, upper-cased)."""
    return [MARKS.sub("", w).upper() for w in words]


def every_third_comma(words: Sequence[str]) -> list[WordLabel]:
    """A fake model: a comma after every third word, upper-case after one."""
    return [WordLabel("," if k % 3 == 2 else "", k % 3 == 0) for k in range(len(words))]


def test_stable_words_only_grow_and_words_in_are_words_out() -> None:
    captioner = Captioner(every_third_comma)
    text = "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN"
    words = text.split()
    stable: tuple[str, ...] = ()
    for n in range(1, len(words) + 1):  # the committed text grows a letter run at a time
        committed = " ".join(words[:n])
        provisional = " " + " ".join(words[n : n + 2]) if n < len(words) else ""
        (event,) = captioner.apply([Partial(0, Hypothesis(committed, provisional), float(n))])
        assert isinstance(event, Partial) and event.caption is not None
        caption = event.caption
        assert caption.stable[: len(stable)] == stable  # a shown word never changes
        assert plain([*caption.stable, *caption.tail]) == (committed + provisional).split()
        assert len(caption.stable) <= n - 1  # the last committed word may still grow
        stable = caption.stable
    segment = Segment(0, text, (), 0.0, 1.0, "endpoint")
    (final,) = captioner.apply([Final(segment)])
    assert isinstance(final, Final) and final.segment.caption is not None
    shown = final.segment.caption.stable
    assert shown[: len(stable)] == stable and plain(shown) == words
    assert final.segment.shown_text == final.segment.caption.text


def test_no_model_call_without_words_to_freeze() -> None:
    calls: list[int] = []

    def counting(words: Sequence[str]) -> list[WordLabel]:
        calls.append(len(words))
        return every_third_comma(words)

    captioner = Captioner(counting)
    early = Partial(0, Hypothesis("ONE TWO", " THREE"), 1.0)
    assert not captioner.needs_model([early])
    (event,) = captioner.apply([early])
    assert calls == [] and isinstance(event, Partial)
    assert event.caption == Caption((), ("one", "two", "three"))
    assert captioner.needs_model([Final(Segment(0, "ONE TWO", (), 0.0, 1.0, "endpoint"))])


@pytest.fixture(scope="module")
def captioning_engine(fixture_export: Path, punctuation_model: Path) -> Engine:
    runtime = RuntimeConfig(device="cpu", precision="int8")
    engine = Engine(fixture_export, EngineConfig(runtime, punctuation=punctuation_model))
    yield engine
    engine.close()


def test_committed_punctuation_never_changes_across_30_utterances(
    captioning_engine: Engine, tts_set: list[tuple[Path, str]]
) -> None:
    captioned = 0
    for path, _ in tts_set:
        samples, _ = read_audio(path)
        stream = captioning_engine.stream(options=StreamOptions(hop_s=0.32))
        stable: dict[int, tuple[str, ...]] = {}
        for k in range(0, samples.size, 1600):
            for event in stream.feed(samples[k : k + 1600]):
                check(event, stable)
        for event in stream.finish():
            check(event, stable)
        captioned += sum(len(v) for v in stable.values())
    assert captioned > 100


def check(event: object, stable: dict[int, tuple[str, ...]]) -> None:
    if isinstance(event, Partial):
        assert event.caption is not None
        before = stable.get(event.segment, ())
        assert event.caption.stable[: len(before)] == before, (before, event.caption)
        assert plain([*event.caption.stable, *event.caption.tail]) == event.hypothesis.text.split()
        stable[event.segment] = event.caption.stable
    elif isinstance(event, Final):
        caption = event.segment.caption
        assert caption is not None
        before = stable.get(event.segment.index, ())
        assert caption.stable[: len(before)] == before
        assert plain(caption.stable) == event.segment.text.split()
        assert caption.text[:1].isupper() and caption.text[-1] in ".,?!:"
        stable[event.segment.index] = caption.stable


def test_punctuate_false_gets_todays_text(
    captioning_engine: Engine, fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    samples, _ = read_audio(tts_set[0][0])
    off = stream_array(captioning_engine, samples, 16000, StreamOptions(punctuate=False))
    with Engine(fixture_export, EngineConfig(RuntimeConfig(device="cpu", precision="int8"))) as e:
        plain_engine = stream_array(e, samples, 16000, StreamOptions())
        with pytest.raises(Exception, match="no punctuation model"):
            e.stream(options=StreamOptions(punctuate=True))
    assert off.text == plain_engine.text
    assert all(s.caption is None for s in off.segments)


def test_v1_and_vosk_sessions(
    fixture_export: Path, punctuation_model: Path, tts_set: list[tuple[Path, str]]
) -> None:
    samples, _ = read_audio(tts_set[1][0])
    config = server_config(fixture_export, punctuation=punctuation_model)
    with ServerThread(config) as server:
        url = server.ws_url()
        on = asyncio.run(stream_v1(url, samples, 16000))
        off = asyncio.run(stream_v1(url, samples, 16000, punctuate=False))
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        _, vosk_end, _ = asyncio.run(vosk_lockstep(server.ws_url("/vosk"), pcm, 16000))
    (final,) = on.of("final")
    (raw,) = off.of("final")
    assert final["text"] != raw["text"] and plain(final["text"].split()) == raw["text"].split()
    assert [w["word"] for w in final["words"]] == raw["text"].split()
    assert " ".join(w["punctuated"] for w in final["words"]) == final["text"]
    assert all("punctuated" not in w for w in raw["words"])
    stable = [p["committed"] for p in on.of("partial")]
    for before, after in itertools.pairwise(stable):
        assert after.startswith(before)
    # Vosk: punctuated text with --punctuation; result words as the acoustic model spells them
    vosk_words = [w["word"] for w in vosk_end["result"]]
    assert vosk_words == [w.upper() for w in vosk_words]
    assert plain(vosk_end["text"].split()) == vosk_words and vosk_end["text"] != " ".join(
        vosk_words
    )


def test_a_server_without_a_model_refuses_punctuate_true(
    fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    samples, _ = read_audio(tts_set[1][0])
    with ServerThread(server_config(fixture_export)) as server:
        asked = asyncio.run(stream_v1(server.ws_url(), samples, 16000, punctuate=True))
        today = asyncio.run(stream_v1(server.ws_url(), samples, 16000))
    error = asked.error
    assert error is not None and error["code"] == "invalid_field" and asked.code == 1007
    assert all("punctuated" not in w for f in today.of("final") for w in f["words"])
