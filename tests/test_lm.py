"""The LM builder (asr-lm), the streamed beam search with a KenLM LM, and its settings."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.common.scoring import wer
from streamasr.export.lm import build_lm, discounts, estimate
from streamasr.server.decoding.beam import LM_WINDOWS, BeamCtcDecoder, LookaheadBlend, log_softmax
from streamasr.server.decoding.greedy import GreedyCtcDecoder
from streamasr.server.decoding.hotwords import Alphabet
from streamasr.server.decoding.scorer import LmUnavailableError, WordLm
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.errors import InvalidFieldError, StreamConfigError
from streamasr.server.events import Event, Final, Partial
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import DecoderSettings, DecodingOptions
from streamasr.server.options.presets import Windows
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol.fields import parse_decoding
from streamasr.server.protocol.v1 import StartMessage, parse_text
from streamasr.server.service.config import load_config

from .service_util import read_mono

kenlm = pytest.importorskip("kenlm")  # the lm extra (in dev: CI has it)

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat saw the dog",
    "the dog saw a cat on the mat",
    "on the log sat a cat",
    "Don't stop, the dog's bowl!",
]


@pytest.fixture(scope="module")
def lj_lm(shared_dir: Path, fixture_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "lj.arpa"
    build_lm(shared_dir / "text" / "ljspeech-train.txt", out, 4, fixture_export)
    return out


@pytest.fixture(scope="module")
def lm_engine(fixture_export: Path, lj_lm: Path) -> Iterator[Engine]:
    config = EngineConfig(
        runtime=RuntimeConfig(device="cpu", precision="fp32", intra_op_threads=1),
        decoding=DecoderSettings(lm=lj_lm),
    )
    with Engine(fixture_export, config) as engine:
        yield engine


# -- the estimator --------------------------------------------------------------------------------


def vocabulary(path: Path) -> list[str]:
    words, section = [], False
    for line in path.read_text().splitlines():
        if line.startswith("\\"):
            section = line == "\\1-grams:"
            continue
        if section and line:
            words.append(line.split("\t")[1])
    return [w for w in words if w != "<s>"]


def total(model: object, context: list[str], words: list[str]) -> float:
    state = kenlm.State()
    model.BeginSentenceWrite(state)  # type: ignore[attr-defined]
    for word in context:
        out = kenlm.State()
        model.BaseScore(state, word, out)  # type: ignore[attr-defined]
        state = out
    return sum(10 ** model.BaseScore(state, w, kenlm.State()) for w in words)  # type: ignore[attr-defined]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_arpa_is_a_distribution_in_every_context(tmp_path: Path, order: int) -> None:
    """Interpolated Kneser-Ney sums to one over the vocabulary (with </s> and <unk>) after any
    context, seen or not, as KenLM reads the file."""
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS * 3 + CORPUS[:4]) + "\n")
    arpa = tmp_path / "lm.arpa"
    build_lm(text, arpa, order)
    model = kenlm.Model(str(arpa))
    words = vocabulary(arpa)
    assert {"THE", "DON'T", "DOG'S", "</s>", "<unk>"} <= set(words)
    for context in ([], ["THE"], ["THE", "CAT"], ["SAT", "ON", "THE"], ["ZEBRA", "THE"]):
        assert total(model, context, words) == pytest.approx(1.0, abs=1e-4)


def test_discounts_follow_chen_goodman() -> None:
    counts = [1] * 40 + [2] * 20 + [3] * 10 + [4] * 5
    y = 40 / (40 + 2 * 20)
    assert discounts(counts) == pytest.approx(
        (1 - 2 * y * 20 / 40, 2 - 3 * y * 10 / 20, 3 - 4 * y * 5 / 10)
    )
    assert discounts([1, 1, 2]) == (0.5, 1.0, 1.5)  # too few counts: the fallback


def test_kneser_ney_prefers_words_seen_in_many_contexts() -> None:
    """'FRANCISCO' is frequent but follows only 'SAN': its unigram (continuation) probability is
    below that of a rarer word seen after many words."""
    sentences = [["SAN", "FRANCISCO"]] * 6 + [[w, "GLASSES"] for w in ("RED", "MY", "HIS", "NEW")]
    lm = estimate(sentences, 2)
    assert lm.probs[0][("GLASSES",)] > lm.probs[0][("FRANCISCO",)]


def test_asr_lm_normalises_to_the_models_alphabet(tmp_path: Path, fixture_export: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("Hello, world -- it's 4 o'clock.\nhello again\n")
    out = tmp_path / "lm.arpa"
    run = subprocess.run(
        [sys.executable, "-m", "streamasr.export.lm", str(text), "--out", str(out), "--order", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout
    build_lm(text, out, 2, fixture_export)
    assert set(vocabulary(out)) == {"HELLO", "WORLD", "IT'S", "O'CLOCK", "AGAIN", "</s>", "<unk>"}


def test_the_lm_builder_does_not_import_torch() -> None:
    code = "import sys, streamasr.export.lm; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_alphabet_of_the_vocabulary(fixture_export: Path) -> None:
    from streamasr.server.manifest import read_manifest

    alphabet = Alphabet.of(read_manifest(fixture_export).vocabulary)
    assert alphabet.normalise("Mr. O'Neil's co-op, 1963!") == "MR O'NEIL'S CO OP"


# -- decoding with the LM ---------------------------------------------------------------------


def decode(
    engine: Engine, samples: np.ndarray, offline: bool, options: StreamOptions | None = None
) -> tuple[str, list[Event]]:
    stream = (
        engine.offline_stream(AudioFormat("f32le"))
        if offline
        else engine.stream(AudioFormat("f32le"), options)
    )
    events: list[Event] = []
    for start in range(0, samples.size, 3200):
        events += stream.feed(samples[start : start + 3200])
    events += stream.finish()
    text = " ".join(e.segment.text for e in events if isinstance(e, Final))
    return text, events


def test_lm_lowers_offline_wer_by_a_fifth(
    lm_engine: Engine, fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    refs, greedy, beam = [], [], []
    with Engine(fixture_export, EngineConfig(runtime=lm_engine.config.runtime)) as plain:
        for path, ref in tts_set:
            samples, _ = read_mono(path)
            refs.append(ref)
            greedy.append(decode(plain, samples, offline=True)[0])
            beam.append(decode(lm_engine, samples, offline=True)[0])
    assert wer(refs, beam).rate <= 0.8 * wer(refs, greedy).rate


def test_streaming_with_the_lm_meets_its_bound(
    lm_engine: Engine, tts_set: list[tuple[Path, str]]
) -> None:
    """The fixture's figure (docs/lm.md): streamed at the server's windows for an LM (no gate:
    the gates' own cost is ``bench.stream.noise``'s), the WER is within 1.05x + 0.3 pt of the
    offline WER with the same LM."""
    refs, offline, streamed = [], [], []
    ungated = StreamOptions.model_defaults(gate=None)
    for path, ref in tts_set:
        samples, _ = read_mono(path)
        refs.append(ref)
        offline.append(decode(lm_engine, samples, offline=True)[0])
        streamed.append(decode(lm_engine, samples, offline=False, options=ungated)[0])
    offline_wer, streaming_wer = wer(refs, offline).rate, wer(refs, streamed).rate
    assert streaming_wer <= 1.05 * offline_wer + 0.003, (streaming_wer, offline_wer)


def windows_of(engine: Engine, options: StreamOptions | None = None) -> Windows:
    o = engine.stream(AudioFormat("f32le"), options).options
    return Windows(o.left_s, o.hop_s, o.lookahead_s)


def test_an_lm_stream_gets_the_lm_windows_unless_chosen(
    lm_engine: Engine, fixture_export: Path
) -> None:
    assert windows_of(lm_engine) == LM_WINDOWS
    assert windows_of(lm_engine, StreamOptions()) == Windows(0.32, 1.0, 0.32)  # all chosen
    only_left = replace(StreamOptions(left_s=1.0), from_model=frozenset({"hop_s", "lookahead_s"}))
    assert windows_of(lm_engine, only_left) == Windows(1.0, LM_WINDOWS.hop_s, 0.64)
    hot = StreamOptions.model_defaults(decoding=DecodingOptions(hotwords=("dromedary",)))
    with Engine(fixture_export) as plain:  # hotwords without an LM: the model's windows
        assert isinstance(plain.stream(options=hot)._decoder, BeamCtcDecoder)
        assert windows_of(plain, hot) == Windows(0.32, 1.0, 0.32)


def test_lookahead_blend_weights_each_view_by_its_context() -> None:
    rng = np.random.default_rng(3)
    kept = log_softmax(rng.normal(size=(6, 5)).astype(np.float32))
    ahead = log_softmax(rng.normal(size=(2, 5)).astype(np.float32))
    blend = LookaheadBlend(left=2, hop=4)
    assert blend.kept(10, kept) is kept  # no lookahead seen yet
    blend.ahead(10, ahead)
    out = blend.kept(10, kept)
    # frame 0: kept view 2 frames from its window's left edge (weight 3), lookahead view at 1
    # frame from the right edge (weight 2); frame 1: weights 4 and 1; the rest as kept
    np.testing.assert_allclose(out[0], log_softmax((3 * kept[0] + 2 * ahead[0]) / 5), atol=1e-6)
    np.testing.assert_allclose(out[1], log_softmax((4 * kept[1] + ahead[1]) / 5), atol=1e-6)
    np.testing.assert_array_equal(out[2:], kept[2:])
    split = np.concatenate([blend.kept(10, kept[:1]), blend.kept(11, kept[1:])])  # an endpoint
    np.testing.assert_allclose(split, out, atol=1e-6)
    assert blend.kept(12, kept) is kept  # past the lookahead


def test_committed_text_is_never_revised(
    lm_engine: Engine, tts_set: list[tuple[Path, str]]
) -> None:
    """Every partial of every dev utterance: the committed text of a segment only grows, the
    full text starts with it, and the final starts with the last committed text."""
    grew = 0
    for path, _ in tts_set:
        samples, _ = read_mono(path)
        _, events = decode(lm_engine, samples, offline=False)
        committed = ""
        for event in events:
            if isinstance(event, Partial):
                hyp = event.hypothesis
                assert hyp.committed.startswith(committed)
                assert hyp.text.startswith(hyp.committed)
                grew += hyp.committed != committed
                committed = hyp.committed
            elif isinstance(event, Final):
                assert event.segment.text.startswith(committed)
                committed = ""
    assert grew > len(tts_set)  # words are committed before the segments end


def test_words_come_from_the_chosen_path(
    lm_engine: Engine, tts_set: list[tuple[Path, str]]
) -> None:
    samples, _ = read_mono(tts_set[6][0])
    _, events = decode(lm_engine, samples, offline=False)
    finals = [e.segment for e in events if isinstance(e, Final)]
    assert finals
    for segment in finals:
        assert " ".join(w.text for w in segment.words) == segment.text
        starts = [w.start for w in segment.words]
        assert starts == sorted(starts)
        assert all(segment.start <= w.start < w.end <= segment.end + 1e-6 for w in segment.words)
        assert all(0.0 <= w.confidence <= 1.0 for w in segment.words)
        assert np.mean([w.confidence for w in segment.words]) > 0.5


def test_beam_search_runs_off_the_event_loop(
    lm_engine: Engine, tts_set: list[tuple[Path, str]]
) -> None:
    stream = lm_engine.stream(AudioFormat("f32le"))
    decoder = stream._decoder
    assert isinstance(decoder, BeamCtcDecoder)
    threads: list[int] = []
    advance = decoder.advance

    def spy(*args: object) -> object:
        threads.append(threading.get_ident())
        return advance(*args)  # type: ignore[arg-type]

    decoder.advance = spy  # type: ignore[method-assign]
    samples, _ = read_mono(tts_set[6][0])

    async def run() -> int:
        for start in range(0, samples.size, 3200):
            await stream.feed_async(samples[start : start + 3200])
        await stream.finish_async()
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert threads and loop_thread not in threads


def test_greedy_without_an_lm(fixture_export: Path) -> None:
    with Engine(fixture_export) as engine:
        assert isinstance(engine.stream()._decoder, GreedyCtcDecoder)


def test_the_manifest_decoder_section_selects_the_lm(
    fixture_export: Path, lj_lm: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(fixture_export, folder)
    shutil.copy(lj_lm, folder / "lm.arpa")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["decoder"] = {"lm": "lm.arpa", "beam_width": 8, "lm_weight": 0.4}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with Engine(folder, EngineConfig(decoding=DecoderSettings(lm_weight=0.6))) as engine:
        decoder = engine.stream()._decoder
        assert isinstance(decoder, BeamCtcDecoder)
        assert (decoder.settings.beam_width, decoder.settings.lm_weight) == (8, 0.6)
        options = StreamOptions(decoding=DecodingOptions(beam_width=4))
        assert engine.stream(options=options)._decoder.settings.beam_width == 4  # type: ignore[attr-defined]


def test_flags_and_environment(lj_lm: Path) -> None:
    env = {"ASR_LM": str(lj_lm), "ASR_BEAM_WIDTH": "32"}
    config = load_config(["--model", "m", "--lm-weight", "0.7", "--word-score", "0.5"], env)
    settings = config.decoder_settings()
    assert (settings.lm, settings.beam_width, settings.lm_weight, settings.word_score) == (
        lj_lm,
        32,
        0.7,
        0.5,
    )


def test_start_message_overrides_within_limits() -> None:
    start = parse_text(
        json.dumps(
            {
                "type": "start",
                "sample_rate": 16000,
                "beam_width": 8,
                "lm_weight": 0.3,
                "hotwords": ["Parkland", "Carrico"],
                "hotword_weight": 2,
            }
        )
    )
    assert isinstance(start, StartMessage)
    options = start.stream_options(StreamOptions())
    assert options.decoding == DecodingOptions(8, 0.3, None, ("Parkland", "Carrico"), 2.0)
    for bad in (
        {"beam_width": 0},
        {"beam_width": 65},
        {"beam_width": 2.5},
        {"lm_weight": "high"},
        {"lm_weight": 99},
        {"hotwords": "Parkland"},
        {"hotwords": ["x"] * 101},
        {"hotwords": ["x" * 51]},
        {"hotword_weight": 21},
    ):
        with pytest.raises(InvalidFieldError):
            parse_decoding(bad)  # type: ignore[arg-type]


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, lj_lm: Path) -> None:
    monkeypatch.setitem(sys.modules, "kenlm", None)
    with pytest.raises(LmUnavailableError, match="lm extra"):
        WordLm(lj_lm)
    with pytest.raises(StreamConfigError):
        DecoderSettings(beam_width=0)
