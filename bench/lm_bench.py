"""Beam search with an n-gram LM and hotwords on the fixture: accuracy, cost, capacity.

    python -m bench.lm_bench [--shared ../shared] [--work DIR] [--precision fp32]

One run measures, on ``speech/dev/tts`` with an LM built by ``asr-lm`` from
``text/ljspeech-train.txt`` (order 4, the fixture's alphabet):

* WER and CER offline (whole utterance) and streamed at the default windows, greedy against the
  LM at the default beam and at beam 32;
* the CPU time per audio second of the model (a greedy streaming pass: greedy decoding costs
  next to nothing) and of the beam search (an LM pass minus the greedy pass), all passes in this
  process, read from /proc (``bench.proc``), and the real-time streams one core holds when CPU
  is the limit (1 / CPU seconds per audio second), greedy beside the LM;
* hotwords: the *rare words* of an utterance are its reference words absent from the LM's text;
  their recall without and with listing them (with and without the LM), and the WER of the
  utterances without rare words when every rare word of the set is listed (unrelated text).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from streamasr.export.lm import build_lm
from streamasr.server.audio import AudioFormat
from streamasr.server.decoding import DecoderSettings, DecodingOptions
from streamasr.server.engine import Engine, EngineConfig
from streamasr.server.events import Final
from streamasr.server.lm_decoder import DEFAULT_BEAM_WIDTH
from streamasr.server.runtime import RuntimeConfig
from streamasr.server.stream import StreamOptions

from . import stream_bench
from .proc import read_usage
from .scoring import cer, wer

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


def transcribe(
    engine: Engine, samples: np.ndarray, offline: bool, options: StreamOptions | None = None
) -> str:
    fmt = AudioFormat("f32le")
    if offline:
        stream = engine.offline_stream(fmt, options)
        events = stream.feed(samples) + stream.finish()
    else:
        stream = engine.stream(fmt, options or StreamOptions())
        events = [
            e for i in range(0, samples.size, FRAME) for e in stream.feed(samples[i : i + FRAME])
        ]
        events += stream.finish()
    return " ".join(e.segment.text for e in events if isinstance(e, Final))


def run_pass(
    engine: Engine, utterances: list[Utterance], offline: bool, options: StreamOptions | None = None
) -> dict[str, Any]:
    refs = [r for _, r in utterances]
    before = cpu_s()
    hyps = [transcribe(engine, x, offline, options) for x, _ in utterances]
    seconds = sum(x.size for x, _ in utterances) / 16000
    return {
        "wer": wer(refs, hyps).rate,
        "cer": cer(refs, hyps).rate,
        "cpu_per_audio_s": (cpu_s() - before) / seconds,
        "hyps": hyps,
    }


def accuracy_and_cost(
    folder: Path, lm: Path, utterances: list[Utterance], precision: str
) -> dict[str, Any]:
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
            for mode in ("offline", "streaming"):
                figures = run_pass(engine, utterances, offline=mode == "offline")
                passes[f"{name} {mode}"] = {k: v for k, v in figures.items() if k != "hyps"}
    model = passes["greedy streaming"]["cpu_per_audio_s"]
    for name in setups:
        entry = passes[f"{name} streaming"]
        entry["decoder_cpu_per_audio_s"] = max(0.0, entry["cpu_per_audio_s"] - model)
        entry["streams_per_core"] = 1.0 / entry["cpu_per_audio_s"]
    return {"passes": passes, "model_cpu_per_audio_s": model, "precision": precision}


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
    folder = stream_bench.export_fixture(shared, work, ("fp32", "int8"))
    lm = lm_file(shared, work, folder)
    figures = accuracy_and_cost(folder, lm, utterances, precision)
    rare = rare_words(utterances, shared / "text" / "ljspeech-train.txt")
    figures["hotwords"] = hotword_figures(folder, lm, utterances, rare, precision)
    figures["utterances"] = len(utterances)
    figures["lm"] = {"file": lm.name, "order": 4, "bytes": lm.stat().st_size}
    return figures


def table(f: dict[str, Any]) -> str:
    lines = [
        "| decoder | mode | WER | CER | CPU s per audio s (all) | decoder CPU s per audio s "
        "| real-time streams per core |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, p in f["passes"].items():
        decoder, mode = name.rsplit(" ", 1)
        extra = (
            f"{p['decoder_cpu_per_audio_s']:.4f} | {p['streams_per_core']:.1f}"
            if "decoder_cpu_per_audio_s" in p
            else " | "
        )
        lines.append(
            f"| {decoder} | {mode} | {p['wer']:.4f} | {p['cer']:.4f} | "
            f"{p['cpu_per_audio_s']:.4f} | {extra} |"
        )
    return "\n".join(lines)


def summary_lines(f: dict[str, Any]) -> list[str]:
    p = f["passes"]
    greedy, lm = p["greedy offline"]["wer"], p[f"lm beam {DEFAULT_BEAM_WIDTH} offline"]["wer"]
    stream = p[f"lm beam {DEFAULT_BEAM_WIDTH} streaming"]["wer"]
    h = f["hotwords"]
    return [
        f"LM offline WER {lm:.4f} vs greedy {greedy:.4f} ({(greedy - lm) / greedy:.0%} lower); "
        f"streaming with the LM {stream:.4f} (bound 1.05x + 0.3 pt = {1.05 * lm + 0.003:.4f})",
        f"decoder CPU per audio s: beam {DEFAULT_BEAM_WIDTH} "
        f"{p[f'lm beam {DEFAULT_BEAM_WIDTH} streaming']['decoder_cpu_per_audio_s']:.4f}, beam 32 "
        f"{p['lm beam 32 streaming']['decoder_cpu_per_audio_s']:.4f}, model "
        f"{f['model_cpu_per_audio_s']:.4f}",
        "hotwords: rare-word recall "
        + ", ".join(
            f"{name} {h[name]['recall unlisted']:.2f} -> {h[name]['recall listed']:.2f} "
            f"(unrelated WER {h[name]['unrelated wer unlisted']:.4f} -> "
            f"{h[name]['unrelated wer listed']:.4f})"
            for name in ("no lm", "lm")
        ),
    ]


def markdown(f: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Fixture `tts-en-ctc-small` ({f['precision']}, CPU), {f['utterances']} utterances of "
            f"`speech/dev/tts`; LM: `asr-lm text/ljspeech-train.txt --order 4 --model FIXTURE` "
            f"({f['lm']['bytes'] / 1e6:.1f} MB ARPA); streaming at the default windows in 20 ms "
            "frames. CPU from /proc for this process, all passes in one run; the decoder's share "
            "is the pass's CPU minus the greedy streaming pass's (the model's). Streams per core: "
            "1 / CPU seconds per audio second (CPU-bound capacity).",
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
    parser = argparse.ArgumentParser(prog="python -m bench.lm_bench", description=__doc__)
    parser.add_argument("--shared", type=Path, default=stream_bench.DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_report"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    utterances = stream_bench.load_set(args.shared / "speech" / "dev" / "tts")
    figures = measure(args.shared, args.work, utterances, args.precision)
    print(markdown(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
