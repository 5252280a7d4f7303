"""Beam search with an n-gram LM and hotwords on the fixture: accuracy, cost, capacity.

    python -m bench lm_bench [--shared ../shared] [--work DIR] [--precision fp32]

One run measures, on ``speech/dev/tts`` with an LM built by ``asr-lm`` from
``text/ljspeech-train.txt`` (order 4, the fixture's alphabet):

* WER and CER offline (whole utterance) and streamed at the default windows, greedy against the
  LM at the default beam and at beam 32;
* the CPU time per audio second of the model (a greedy streaming pass: greedy decoding costs
  next to nothing) and of the beam search (an LM pass minus the greedy pass), all passes in this
  process, read through psutil (``bench.common.proc``), and the real-time streams one core
  holds when CPU is the limit (1 / CPU seconds per audio second), greedy beside the LM;
* hotwords: the *rare words* of an utterance are its reference words absent from the LM's text;
  their recall without and with listing them (with and without the LM), and the WER of the
  utterances without rare words when every rare word of the set is listed (unrelated text).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from streamasr.export.lm import build_lm
from streamasr.server.decoding.beam import LM_WINDOWS
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.stream import Stream
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import DEFAULT_BEAM_WIDTH, DecoderSettings, DecodingOptions
from streamasr.server.options.stream import StreamOptions

from ..common import fixtures
from ..common.percentiles import percentiles
from ..common.proc import read_usage
from ..common.scoring import cer, wer
from .sim import RATE, TimedRun, word_latencies

Utterance = tuple[np.ndarray, str]
FRAME = 320
"""Samples fed per call: 20 ms frames, as clients send."""


def lm_file(shared: Path, work: Path, fixture: Path) -> Path:
    out = work / "lm" / "ljspeech-4.arpa"
    if not out.is_file():
        build_lm(shared / "text" / "ljspeech-train.txt", out, 4, fixture)
    return out


def cpu_s() -> float:
    usage = read_usage(os.getpid())
    return usage.cpu_s if usage else 0.0


def decoder_cpu(stream: Stream) -> float:
    """CPU seconds the stream's beam search spent (0 for greedy decoding)."""
    return getattr(stream._decoder, "cpu_s", 0.0)


def transcribe(
    engine: Engine, samples: np.ndarray, offline: bool, options: StreamOptions | None = None
) -> str:
    return decode(engine, samples, offline, options)[0].text


def decode(
    engine: Engine, samples: np.ndarray, offline: bool, options: StreamOptions | None = None
) -> tuple[TimedRun, float]:
    """One utterance, streamed in 20 ms frames (emission = frame arrival + feed duration, as
    ``bench.stream.sim.run_timed``) or whole; the run and its decoder's CPU seconds."""
    fmt = AudioFormat("f32le")
    run = TimedRun(samples.size)
    if offline:
        stream = engine.offline_stream(fmt, options)
        run.events = [(0.0, e) for e in stream.feed(samples) + stream.finish()]
        return run, decoder_cpu(stream)
    stream = engine.stream(fmt, options)  # None: the server's defaults (windows, auto gate)
    for i in range(0, samples.size, FRAME):
        started = time.perf_counter()
        events = stream.feed(samples[i : i + FRAME])
        done = min(i + FRAME, samples.size) / RATE + time.perf_counter() - started
        run.events += [(done, e) for e in events]
    started = time.perf_counter()
    events = stream.finish()
    run.events += [(samples.size / RATE + time.perf_counter() - started, e) for e in events]
    run.model_samples = stream.stats.model_samples
    return run, decoder_cpu(stream)


def run_pass(
    engine: Engine, utterances: list[Utterance], offline: bool, options: StreamOptions | None = None
) -> dict[str, Any]:
    refs = [r for _, r in utterances]
    before = cpu_s()
    runs = [decode(engine, x, offline, options) for x, _ in utterances]
    total = cpu_s() - before
    seconds = sum(x.size for x, _ in utterances) / RATE
    hyps = [run.text for run, _ in runs]
    decoder = sum(c for _, c in runs) / seconds
    figures: dict[str, Any] = {
        "wer": wer(refs, hyps).rate,
        "cer": cer(refs, hyps).rate,
        "cpu_per_audio_s": total / seconds,
        "decoder_cpu_per_audio_s": decoder,
        "model_cpu_per_audio_s": max(0.0, total / seconds - decoder),
        "streams_per_core": seconds / total,
    }
    if not offline:
        latencies = [t for run, _ in runs for t in word_latencies(run)]
        figures["word_latency_s"] = percentiles(latencies)
        figures["input_ratio"] = sum(r.model_samples for r, _ in runs) / (seconds * RATE)
        figures["windows"] = windows_label(engine, options)
    return figures


def windows_label(engine: Engine, options: StreamOptions | None) -> str:
    o = engine.stream(AudioFormat("f32le"), options).options
    return f"{o.left_s:g}/{o.hop_s:g}/{o.lookahead_s:g}{'' if o.gate is None else ', gated'}"


def accuracy_and_cost(
    folder: Path, lm: Path, utterances: list[Utterance], precision: str
) -> dict[str, Any]:
    """Each decoder offline and streamed at the server's windows for it (greedy: the model's
    defaults; with the LM: ``LM_WINDOWS``), without a gate (as ``stream_bench``'s fidelity: the
    gates are measured by ``bench.stream.noise``); the default beam also at greedy's windows and
    with the server's default gate."""
    runtime = RuntimeConfig(device="cpu", precision=precision, intra_op_threads=1)
    passes: dict[str, Any] = {}
    setups = {
        "greedy": DecoderSettings(),
        f"lm beam {DEFAULT_BEAM_WIDTH}": DecoderSettings(lm=lm),
        "lm beam 32": DecoderSettings(lm=lm, beam_width=32),
    }
    for name, settings in setups.items():
        with Engine(folder, EngineConfig(runtime=runtime, decoding=settings)) as engine:
            transcribe(engine, utterances[0][0], offline=False)  # warm-up
            passes[f"{name} offline"] = run_pass(engine, utterances, offline=True)
            ungated = StreamOptions.model_defaults(gate=None)
            passes[f"{name} streaming"] = run_pass(engine, utterances, False, ungated)
            if name == f"lm beam {DEFAULT_BEAM_WIDTH}":
                greedy_windows = StreamOptions(gate=None)
                passes[f"{name} streaming-greedy-windows"] = run_pass(
                    engine, utterances, False, greedy_windows
                )
                passes[f"{name} streaming-gated"] = run_pass(engine, utterances, False, None)
    return {"passes": passes, "precision": precision}


def rare_words(utterances: list[Utterance], lm_text: Path) -> list[list[str]]:
    known = set(lm_text.read_text(encoding="utf-8").split())
    return [sorted({w for w in ref.split() if w not in known}) for _, ref in utterances]


def hotword_figures(
    folder: Path, lm: Path, utterances: list[Utterance], rare: list[list[str]], precision: str
) -> dict[str, Any]:
    runtime = RuntimeConfig(device="cpu", precision=precision, intra_op_threads=1)
    listed = sorted({w for words in rare for w in words})
    with_rare = [i for i, words in enumerate(rare) if words]
    plain = [i for i, words in enumerate(rare) if not words]
    figures: dict[str, Any] = {"rare_words": listed, "utterances": len(with_rare)}
    for name, settings in (("no lm", DecoderSettings()), ("lm", DecoderSettings(lm=lm))):
        with Engine(folder, EngineConfig(runtime=runtime, decoding=settings)) as engine:
            row: dict[str, Any] = {}
            for label, hot in (("unlisted", False), ("listed", True)):
                found = 0
                for i in with_rare:
                    options = _hot(rare[i]) if hot else None
                    words = transcribe(engine, utterances[i][0], True, options).split()
                    found += sum(w in words for w in rare[i])
                row[f"recall {label}"] = found / sum(len(rare[i]) for i in with_rare)
                refs = [utterances[i][1] for i in plain]
                hyps = [
                    transcribe(engine, utterances[i][0], True, _hot(listed) if hot else None)
                    for i in plain
                ]
                row[f"unrelated wer {label}"] = wer(refs, hyps).rate
            figures[name] = row
    return figures


def _hot(words: list[str]) -> StreamOptions:
    return replace(StreamOptions(), decoding=DecodingOptions(hotwords=tuple(words)))


def measure(
    shared: Path, work: Path, utterances: list[Utterance], precision: str = "fp32"
) -> dict[str, Any]:
    folder = fixtures.export_fixture(shared, work, ("fp32", "int8"))
    lm = lm_file(shared, work, folder)
    figures = accuracy_and_cost(folder, lm, utterances, precision)
    rare = rare_words(utterances, shared / "text" / "ljspeech-train.txt")
    figures["hotwords"] = hotword_figures(folder, lm, utterances, rare, precision)
    figures["utterances"] = len(utterances)
    figures["lm"] = {"file": lm.name, "order": 4, "bytes": lm.stat().st_size}
    return figures


MODES = {
    "offline": "offline",
    "streaming": "streaming",
    "streaming-greedy-windows": "streaming, greedy's windows",
    "streaming-gated": "streaming, server's default gate",
}


def table(f: dict[str, Any]) -> str:
    lines = [
        "| decoder | mode | windows L/C/R s | WER | CER | model CPU s per audio s "
        "| decoder CPU s per audio s | streams per core | model input x | word latency p50/p95 s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, p in f["passes"].items():
        decoder, mode = name.rsplit(" ", 1)
        if "input_ratio" in p:
            lat = p["word_latency_s"]
            latency = f"{lat['p50']:.2f}/{lat['p95']:.2f}"
            stream = f"{p['windows']} |", f"{p['input_ratio']:.2f} | {latency}"
        else:
            stream = "whole |", "1.00 | "
        lines.append(
            f"| {decoder} | {MODES[mode]} | {stream[0]} {p['wer']:.4f} | {p['cer']:.4f} | "
            f"{p['model_cpu_per_audio_s']:.4f} | {p['decoder_cpu_per_audio_s']:.4f} | "
            f"{p['streams_per_core']:.1f} | {stream[1]} |"
        )
    return "\n".join(lines)


def bound(offline_wer: float) -> float:
    """The issue's target for streaming with the LM: 1.05x offline + 0.3 pt."""
    return 1.05 * offline_wer + 0.003


def summary_lines(f: dict[str, Any]) -> list[str]:
    p = f["passes"]
    default = f"lm beam {DEFAULT_BEAM_WIDTH}"
    greedy, lm = p["greedy offline"]["wer"], p[f"{default} offline"]["wer"]
    lines = [f"LM offline WER {lm:.4f} vs greedy {greedy:.4f} ({(greedy - lm) / greedy:.0%} lower)"]
    for name in (default, "lm beam 32"):
        offline, stream = p[f"{name} offline"]["wer"], p[f"{name} streaming"]
        met = "met" if stream["wer"] <= bound(offline) else "MISSED"
        lines.append(
            f"{name}: streaming {stream['wer']:.4f} at {stream['windows']} s vs offline "
            f"{offline:.4f}, bound {bound(offline):.4f}: {met}"
        )
    h = f["hotwords"]
    return [
        *lines,
        f"decoder CPU per audio s (streaming): beam {DEFAULT_BEAM_WIDTH} "
        f"{p[f'{default} streaming']['decoder_cpu_per_audio_s']:.4f}, beam 32 "
        f"{p['lm beam 32 streaming']['decoder_cpu_per_audio_s']:.4f}; model "
        f"{p[f'{default} streaming']['model_cpu_per_audio_s']:.4f}",
        "hotwords: rare-word recall "
        + ", ".join(
            f"{name} {h[name]['recall unlisted']:.2f} -> {h[name]['recall listed']:.2f} "
            f"(unrelated WER {h[name]['unrelated wer unlisted']:.4f} -> "
            f"{h[name]['unrelated wer listed']:.4f})"
            for name in ("no lm", "lm")
        ),
    ]


def markdown(f: dict[str, Any]) -> str:
    lm = LM_WINDOWS
    return "\n".join(
        [
            f"Fixture `tts-en-ctc-small` ({f['precision']}, CPU), {f['utterances']} utterances of "
            f"`speech/dev/tts`; LM: `asr-lm text/ljspeech-train.txt --order 4 --model FIXTURE` "
            f"({f['lm']['bytes'] / 1e6:.1f} MB ARPA). Streaming in 20 ms frames at the server's "
            f"windows for each decoder (greedy: the model's defaults; with an LM: "
            f"{lm.left_s:g}/{lm.hop_s:g}/{lm.lookahead_s:g} s) without a gate; the default beam "
            "also at greedy's windows and with the server's default gate (auto: Silero when the "
            "export has its VAD, else energy). CPU from /proc for this process, all passes in "
            "one run; decoder CPU = the beam search's own thread time, model CPU = the rest of "
            "the pass (inference, windowing, endpointing). Streams per core: 1 / CPU seconds "
            "per audio second (CPU-bound capacity). Model input x: model input samples per "
            "audio sample (offline 1). Word latency: end of a word's audio to the first "
            "partial showing it (one stream, no queueing).",
            "",
            *summary_lines(f),
            "",
            table(f),
            "",
            f"Hotwords: rare words = reference words absent from the LM text "
            f"({len(f['hotwords']['rare_words'])} words in {f['hotwords']['utterances']} "
            "utterances), listed for their own utterance at the default weight; unrelated text = "
            "the other utterances with every rare word listed.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench lm_bench", description=__doc__)
    parser.add_argument("--shared", type=Path, default=fixtures.DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_report"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    utterances = fixtures.load_set(args.shared / "speech" / "dev" / "tts")
    figures = measure(args.shared, args.work, utterances, args.precision)
    print(markdown(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
