"""Caption writers: cue splitting by time and line length, SRT and WebVTT syntax, text and JSON."""

from __future__ import annotations

import json

import pytest

from streamasr.client.captions import (
    CaptionLimits,
    Cue,
    balanced_wrap,
    cues_from_finals,
    render,
    timestamp,
    to_srt,
    to_vtt,
    wrap,
)
from streamasr.client.messages import FinalResult, WordTiming

from .client_support import parse_srt, parse_vtt


def _final(
    index: int, words: list[tuple[str, float, float]], with_words: bool = True
) -> FinalResult:
    timed = tuple(WordTiming(w, s, e, 0.9) for w, s, e in words)
    return FinalResult(
        segment=index,
        text=" ".join(w for w, _, _ in words),
        start=words[0][1] - 0.2,
        end=words[-1][2] + 0.8,
        words=timed if with_words else (),
    )


def _speech(
    n: int, start: float, word_s: float = 0.35, gap_s: float = 0.1
) -> list[tuple[str, float, float]]:
    vocabulary = ["THE", "REPORT", "OF", "COMMISSIONERS", "TO", "INQUIRE", "INTO", "STATE"]
    out, at = [], start
    for i in range(n):
        out.append((vocabulary[i % len(vocabulary)], round(at, 3), round(at + word_s, 3)))
        at += word_s + gap_s
    return out


def test_timestamps() -> None:
    assert timestamp(0, ",") == "00:00:00,000"
    assert timestamp(1200, ",") == "00:00:01,200"
    assert timestamp(3_723_456, ".") == "01:02:03.456"
    assert timestamp(100 * 3_600_000 + 5, ".") == "100:00:00.005"


def test_wrap_and_balance() -> None:
    words = ["THE", "MUNICIPAL", "CORPORATIONS", "IN", "EIGHTEEN", "THIRTY", "FIVE"]
    assert wrap(words, 42) == ["THE MUNICIPAL CORPORATIONS IN EIGHTEEN", "THIRTY FIVE"]
    balanced = balanced_wrap(words, 42)
    assert len(balanced) == 2 and " ".join(balanced) == " ".join(words)
    assert max(len(line) for line in balanced) < 30
    assert wrap(["A" * 50, "B"], 42) == ["A" * 50, "B"]  # an over-long word keeps its own line


def test_long_segment_is_split_within_limits() -> None:
    finals = [_final(0, _speech(60, 0.5)), _final(1, _speech(5, 40.0))]
    limits = CaptionLimits()
    cues = cues_from_finals(finals, limits)
    assert len(cues) > 4
    words = [w for c in cues for line in c.lines for w in line.split()]
    assert words == " ".join(f.text for f in finals).split()
    for cue in cues:
        assert 1 <= len(cue.lines) <= limits.max_lines
        assert all(len(line) <= limits.max_line_chars for line in cue.lines)
        assert (cue.end_ms - cue.start_ms) / 1000 <= limits.max_seconds + 1e-9
    # cues follow the words: the first starts at the first word, one cue never spans two finals
    assert cues[0].start_ms == 500
    assert cues[-1].lines == ("THE REPORT OF COMMISSIONERS TO",)
    parse_srt(to_srt(cues))
    parse_vtt(to_vtt(cues))


def test_short_limits_split_by_time() -> None:
    cues = cues_from_finals([_final(0, _speech(20, 1.0))], CaptionLimits(max_seconds=2.0))
    assert all(c.end_ms - c.start_ms <= 2000 for c in cues)
    assert len(cues) >= 4


def test_short_cue_is_held_but_never_overlaps() -> None:
    finals = [_final(0, [("HI", 1.0, 1.2)]), _final(1, [("THERE", 1.5, 1.9)])]
    cues = cues_from_finals(finals)
    assert cues == [Cue(1000, 1500, ("HI",)), Cue(1500, 2500, ("THERE",))]


def test_finals_without_words_are_spread_over_the_segment() -> None:
    final = _final(0, _speech(40, 2.0), with_words=False)
    cues = cues_from_finals([final])
    assert len(cues) > 1
    assert cues[0].start_ms == round(final.start * 1000)
    assert cues[-1].end_ms <= round(final.end * 1000) + 1
    assert " ".join(" ".join(c.lines) for c in cues) == final.text
    parse_srt(to_srt(cues))


def test_srt_and_vtt_text() -> None:
    finals = [
        _final(0, [("HELLO", 0.1, 0.4), ("WORLD", 0.5, 1.25)]),
        _final(1, [("A<B", 3.0, 3.5)]),
    ]
    srt = render("srt", finals)
    assert srt == (
        "1\n00:00:00,100 --> 00:00:01,250\nHELLO WORLD\n\n2\n00:00:03,000 --> 00:00:04,000\nA<B\n\n"
    )
    vtt = render("vtt", finals)
    assert vtt.startswith("WEBVTT\n\n00:00:00.100 --> 00:00:01.250\nHELLO WORLD\n\n")
    assert "A&lt;B" in vtt
    assert [c.lines for c in parse_srt(srt)] == [("HELLO WORLD",), ("A<B",)]
    assert len(parse_vtt(vtt)) == 2
    assert render("srt", []) == "" and parse_vtt(render("vtt", [])) == []


def test_text_and_json() -> None:
    finals = [_final(0, [("HELLO", 0.1, 0.4)]), _final(1, [("WORLD", 2.0, 2.3)])]
    assert render("text", finals) == "HELLO WORLD\n"
    record = json.loads(render("json", finals, "a.wav", 3.5))
    assert record["file"] == "a.wav" and record["text"] == "HELLO WORLD"
    assert record["audio_seconds"] == 3.5
    assert record["segments"][1]["words"] == [
        {"word": "WORLD", "start": 2.0, "end": 2.3, "confidence": 0.9}
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "1\n00:00:01,000 --> 00:00:02,000\nA\n",  # no blank line at the end
        "2\n00:00:01,000 --> 00:00:02,000\nA\n\n",  # numbered from 2
        "1\n00:00:01.000 --> 00:00:02.000\nA\n\n",  # VTT decimal point
        "1\n00:00:03,000 --> 00:00:02,000\nA\n\n",  # ends before it starts
        "1\n00:00:01,000 --> 00:00:03,000\nA\n\n2\n00:00:02,000 --> 00:00:04,000\nB\n\n",
    ],
)
def test_the_strict_srt_parser_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_srt(bad)


def test_the_strict_vtt_parser_rejects() -> None:
    with pytest.raises(ValueError):
        parse_vtt("00:00:01.000 --> 00:00:02.000\nA\n\n")  # no header
    with pytest.raises(ValueError):
        parse_vtt("WEBVTT\n\n00:00:01,000 --> 00:00:02,000\nA\n\n")  # SRT comma


def test_cues_show_the_punctuated_words_when_the_server_punctuates() -> None:
    words = (
        WordTiming("HELLO", 0.0, 0.4, 0.9, "Hello,"),
        WordTiming("WORLD", 0.5, 0.9, 0.9, "world."),
    )
    final = FinalResult(0, "Hello, world.", 0.0, 1.0, words, "endpoint")
    (cue,) = cues_from_finals([final])
    assert cue.lines == ("Hello, world.",)
    assert "Hello, world." in to_srt([cue]) and "Hello, world." in to_vtt([cue])
