"""Hotwords: the phrase trie and its scores, a misspelled word recovered, Vosk's phrase_list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from streamasr.server.arrays import Logits
from streamasr.server.decoding.beam import TOKEN_MIN_LOGP, BeamCtcDecoder
from streamasr.server.decoding.hotwords import (
    Alphabet,
    HotwordTrie,
    make_hotwords,
    read_hotwords_file,
)
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.errors import StreamConfigError
from streamasr.server.events import Final
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.manifest import Vocabulary
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import MAX_HOTWORDS, BeamSettings, DecodingOptions
from streamasr.server.options.stream import StreamOptions

from .service_util import ServerThread, chunks, encode, read_mono, server_config
from .timeouts import timeout

pytest.importorskip("flashlight.lib.text.decoder")  # the lm extra (in dev: CI has it)

VOCAB = Vocabulary(("<pad>", "|", "C", "A", "T", "R", "O"), blank_id=0, word_delimiter="|")
RARE_UTTERANCE = 24
"""tts-024: '... THE SHOULDER OF THE DROMEDARY ...'; greedy writes 'DROMTERY'."""
RARE = "DROMEDARY"


def spell(text: str, frames_per_symbol: int = 2, confidence: float = 6.0) -> Logits:
    """Logits that spell ``text`` symbol by symbol with blanks between (a clear path)."""
    rows: list[np.ndarray] = []
    for char in text.replace(" ", "|"):
        for _ in range(frames_per_symbol):
            row = np.zeros(len(VOCAB.tokens), dtype=np.float32)
            row[VOCAB.tokens.index(char)] = confidence
            rows.append(row)
        blank = np.zeros(len(VOCAB.tokens), dtype=np.float32)
        blank[0] = confidence
        rows.append(blank)
    return np.stack(rows)


def beam_text(logits: Logits, hotwords: list[str], weight: float = 1.5) -> str:
    alphabet = Alphabet.of(VOCAB)
    trie = HotwordTrie(make_hotwords(hotwords, alphabet, weight), VOCAB)
    decoder = BeamCtcDecoder(VOCAB, 0.02, BeamSettings(beam_width=8), None, trie)
    decoder.advance(logits, logits[:0])
    return decoder.end_segment().text


def test_phrases_are_normalised_and_bounded(tmp_path: Path) -> None:
    alphabet = Alphabet.english()
    hotwords = make_hotwords(["Parkland ", "parkland", "Dr. Carrico", "!!"], alphabet, 2.0)
    assert [h.phrase for h in hotwords] == ["PARKLAND", "DR CARRICO"]
    with pytest.raises(StreamConfigError):
        make_hotwords(["a"] * (MAX_HOTWORDS + 1), alphabet)
    with pytest.raises(StreamConfigError):
        make_hotwords(["a" * 51], alphabet)
    with pytest.raises(StreamConfigError):
        make_hotwords(["a"], alphabet, weight=-1)
    listed = tmp_path / "hot.txt"
    listed.write_text("# names\nParkland\nCarrico\t4\n\n")
    read = read_hotwords_file(listed, alphabet, 1.0)
    assert [(h.phrase, h.weight) for h in read] == [("PARKLAND", 1.0), ("CARRICO", 4.0)]


def test_a_listed_word_wins_over_a_close_spelling() -> None:
    """The acoustics favour 'CAT' a little over 'CAR'; listing CAR tips it, and not CAT."""
    logits = spell("CAT")
    logits[6, VOCAB.tokens.index("R")] = 5.5  # the T frames: R close behind
    logits[7, VOCAB.tokens.index("R")] = 5.5
    assert beam_text(logits, []) == "CAT"
    assert beam_text(logits, ["car"]) == "CAR"


def test_an_unfinished_phrase_gives_its_bonus_back() -> None:
    """'CARO' is listed; the audio allows 'CAR' (R close behind T) but never an O: the partial
    match earns nothing in the end, so the better-sounding 'CAT' stays."""
    logits = spell("CAT")
    logits[6, VOCAB.tokens.index("R")] = 5.0
    logits[7, VOCAB.tokens.index("R")] = 5.0
    assert beam_text(logits, ["car"], weight=1.5) == "CAR"
    assert beam_text(logits, ["caro"], weight=1.5) == "CAT"


def test_symbols_below_the_token_floor_are_not_tried() -> None:
    """Per-frame pruning: a symbol the frame gives less than e^TOKEN_MIN_LOGP is never
    extended, even where a hotword would win without the floor; just above it the bonus wins."""
    r = VOCAB.tokens.index("R")
    for logit, expected in ((-TOKEN_MIN_LOGP + 1.0, "CAT"), (-TOKEN_MIN_LOGP - 1.0, "CAR")):
        logits = spell("CAT", confidence=logit + 2.0)
        logits[6:8, r] = 2.0  # the T frames: R ``logit`` below T in log probability
        assert beam_text(logits, ["car"], weight=5.0) == expected


# -- the fixture model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(fixture_export: Path) -> Iterator[Engine]:
    runtime = RuntimeConfig(device="cpu", precision="fp32", intra_op_threads=1)
    with Engine(fixture_export, EngineConfig(runtime=runtime)) as e:
        yield e


def transcribe(engine: Engine, samples: np.ndarray, hotwords: tuple[str, ...] = ()) -> str:
    options = StreamOptions(decoding=DecodingOptions(hotwords=hotwords) if hotwords else None)
    stream = engine.offline_stream(AudioFormat("f32le"), options)
    events = stream.feed(samples) + stream.finish()
    return " ".join(e.segment.text for e in events if isinstance(e, Final))


def test_a_misspelled_rare_word_is_recovered_when_listed(
    engine: Engine, tts_set: list[tuple[Path, str]]
) -> None:
    path, reference = tts_set[RARE_UTTERANCE]
    assert RARE in reference.split()
    samples, _ = read_mono(path)
    assert RARE not in transcribe(engine, samples).split()  # greedy misspells it
    assert RARE in transcribe(engine, samples, (RARE.lower(),)).split()


async def vosk_with_phrases(url: str, pcm: bytes, phrases: list[str]) -> str:
    """A Vosk client with a phrase_list: config, 0.2 s chunks each awaiting a reply, eof."""
    texts: list[str] = []
    async with connect(url, compression=None) as ws:
        config: dict[str, Any] = {"sample_rate": 16000, "phrase_list": [*phrases, "[unk]"]}
        await ws.send(json.dumps({"config": config}))
        for piece in chunks(pcm, 6400):
            await ws.send(piece)
            reply = json.loads(await asyncio.wait_for(ws.recv(), timeout(30)))
            texts.append(reply.get("text", ""))
        await ws.send('{"eof" : 1}')
        texts.append(json.loads(await asyncio.wait_for(ws.recv(), timeout(30)))["text"])
    return " ".join(t for t in texts if t)


def test_vosk_phrase_list_boosts_its_words(
    fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    samples, _ = read_mono(tts_set[RARE_UTTERANCE][0])
    pcm = encode(samples, "s16le")
    with ServerThread(server_config(fixture_export, precision="fp32")) as server:
        plain = asyncio.run(vosk_with_phrases(server.ws_url("/vosk"), pcm, []))
        boosted = asyncio.run(vosk_with_phrases(server.ws_url("/vosk"), pcm, [RARE.lower()]))
    assert RARE not in plain.split()
    assert RARE in boosted.split()
