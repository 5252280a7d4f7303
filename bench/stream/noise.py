"""Gates under noise: model input saved, accuracy and words lost, no gate / energy / Silero VAD.

    python -m bench noise [--model DIR] [--shared ../shared] [--work DIR] [--limit N]

The noisy evaluation is built from the dev sets, deterministically (fixed seeds):

* **streams**: the utterances of a set in groups of 5, with 2 s of silence before, between and
  after them (a room where people take turns);
* **noise** over the whole stream (the silences included): ``white`` (Gaussian) or ``babble``
  (6 utterances of the *other* dev set summed at random offsets, so never the words being
  scored), scaled to an SNR of 20, 10 or 5 dB against the speech's own power; ``quiet`` is the
  clean reference (silences at about -60 dBFS).

For each condition and gate (``none``, ``energy``, ``silero``), one stream per group in 20 ms
frames at the model's default windows: the **model input saved** against no gate, **WER** of the
tts streams against their references, **agreement** (character, bench.common.scoring) of the human
streams with the offline transcripts of the same noisy audio (one window per utterance, with
0.3 s either side, no gate), and **edge
words lost**: the first and last word of each utterance as the ungated stream finals them, counted
lost when no word of the gated stream overlaps it in time; and **pauses ended**: pauses between
utterances in which a final ends (frames a gate skips or blanks decode as blanks, so a VAD that
hears no speech lets the blank-run endpoint fire). The Silero VAD's own cost is measured
too: process CPU seconds per audio second over the tts streams (``bench.common.proc``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.gate import GateRuns, JudgesInline, Mask, speech_mask
from streamasr.server.engine.offline import transcribe
from streamasr.server.engine.vad import SileroGate, SileroVad
from streamasr.server.engine.windows import SlidingWindower, Window, WindowPlan
from streamasr.server.options.gate import RUN_QUANTUM_FRAMES, VadGateConfig, gate_config
from streamasr.server.options.stream import StreamOptions

from ..common import fixtures
from ..common.proc import own_cpu_s
from ..common.scoring import agreement, wer
from .sim import RATE, TimedRun, run_timed

log = logging.getLogger("bench.noise")

SNRS_DB = (20, 10, 5)
NOISES = ("white", "babble")
GATES = ("none", "energy", "silero")
PAUSE_S = 2.0
GROUP = 5
BABBLE_TALKERS = 6
QUIET_LEVEL = 0.001
"""Amplitude of the ``quiet`` condition's background (about -60 dBFS)."""

Audio = NDArray[np.float32]


@dataclass(frozen=True)
class NoisyStream:
    """One evaluation stream: audio, its reference and where each utterance lies (samples)."""

    audio: Audio
    reference: str
    spans: tuple[tuple[int, int], ...]


def _groups(utterances: Sequence[fixtures.Utterance]) -> list[list[fixtures.Utterance]]:
    return [list(utterances[i : i + GROUP]) for i in range(0, len(utterances), GROUP)]


def clean_stream(group: Sequence[fixtures.Utterance]) -> tuple[Audio, list[tuple[int, int]]]:
    """Utterances with 2 s of digital silence before, between and after them."""
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.float32)
    parts: list[Audio] = [pause]
    spans, at = [], pause.size
    for samples, _ in group:
        parts += [samples, pause]
        spans.append((at, at + samples.size))
        at += samples.size + pause.size
    return np.concatenate(parts), spans


def babble(others: Sequence[Audio], length: int, seed: int) -> Audio:
    """``BABBLE_TALKERS`` utterances of ``others``, each looped from a random offset, summed."""
    rng = np.random.default_rng(seed)
    out = np.zeros(length, dtype=np.float64)
    for k in rng.choice(len(others), size=BABBLE_TALKERS, replace=len(others) < BABBLE_TALKERS):
        talker = np.resize(others[int(k)], length + others[int(k)].size)
        offset = int(rng.integers(0, others[int(k)].size))
        out += talker[offset : offset + length]
    return out.astype(np.float32)


def noisy(
    clean: Audio, spans: Sequence[tuple[int, int]], noise: Audio | None, snr_db: float | None
) -> Audio:
    """``clean`` plus ``noise`` scaled to ``snr_db`` against the power of the speech spans."""
    if noise is None or snr_db is None:
        rng = np.random.default_rng(0)
        return (clean + QUIET_LEVEL * rng.standard_normal(clean.size)).astype(np.float32)
    speech = np.concatenate([clean[a:b] for a, b in spans]).astype(np.float64)
    target = float(np.mean(speech**2)) / 10 ** (snr_db / 10)
    scale = float(np.sqrt(target / max(float(np.mean(noise.astype(np.float64) ** 2)), 1e-12)))
    mixed = clean + scale * noise
    peak = float(np.max(np.abs(mixed)))
    return (mixed / peak * 0.95 if peak > 1.0 else mixed).astype(np.float32)


def build(
    utterances: Sequence[fixtures.Utterance], others: Sequence[Audio], condition: str
) -> list[NoisyStream]:
    """The streams of one condition: ``quiet``, or ``white-10`` / ``babble-5`` (noise-SNR)."""
    streams = []
    for g, group in enumerate(_groups(utterances)):
        clean, spans = clean_stream(group)
        if condition == "quiet":
            audio = noisy(clean, spans, None, None)
        else:
            kind, snr = condition.split("-")
            seed = 1000 * g + int(snr)
            noise = (
                np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
                if kind == "white"
                else babble(others, clean.size, seed)
            )
            audio = noisy(clean, spans, noise, float(snr))
        streams.append(NoisyStream(audio, " ".join(r for _, r in group), tuple(spans)))
    return streams


def conditions() -> list[str]:
    return ["quiet"] + [f"{n}-{s}" for n in NOISES for s in SNRS_DB]


def edge_words_lost(ungated: TimedRun, gated: TimedRun, spans: Sequence[tuple[int, int]]) -> int:
    """First and last words of each utterance (ungated finals) no gated word overlaps."""
    base = [w for f in ungated.finals for w in f.segment.words]
    kept = [(w.start, w.end) for f in gated.finals for w in f.segment.words]
    lost = 0
    for a, b in spans:
        inside = [w for w in base if a / RATE - 0.5 <= w.start and w.end <= b / RATE + 0.5]
        for word in {id(w): w for w in inside[:1] + inside[-1:]}.values():
            if not any(s < word.end and word.start < e for s, e in kept):
                lost += 1
    return lost


def pauses_ended(run: TimedRun, spans: Sequence[tuple[int, int]], slack_s: float = 0.2) -> int:
    """Pauses between utterances in which a final ends (by ``slack_s`` after the next starts):
    the endpoint fired there, so the reader saw the utterance close before the next began."""
    ends = [f.segment.end for f in run.finals]
    return sum(
        any(stop / RATE <= t <= start / RATE + slack_s for t in ends)
        for (_, stop), (start, _) in pairwise(spans)
    )


def _run_gates(e: Any, streams: Sequence[NoisyStream]) -> dict[str, list[TimedRun]]:
    return {
        gate: [
            run_timed(e, s.audio, StreamOptions.model_defaults(gate=gate_config(gate)))
            for s in streams
        ]
        for gate in GATES
    }


def measure_condition(
    e: Any, tts: list[NoisyStream], human: list[NoisyStream]
) -> dict[str, dict[str, float]]:
    """Figures per gate of one condition."""
    refs = [s.reference for s in tts]
    tts_runs, human_runs = _run_gates(e, tts), _run_gates(e, human)
    margin = int(0.3 * RATE)
    offline = " ".join(
        transcribe(e, s.audio[max(0, a - margin) : b + margin], RATE).text
        for s in human
        for a, b in s.spans
    )
    base = sum(r.model_samples for r in tts_runs["none"] + human_runs["none"])
    figures = {}
    for gate in GATES:
        runs = tts_runs[gate] + human_runs[gate]
        ungated = tts_runs["none"] + human_runs["none"]
        spans = [s.spans for s in [*tts, *human]]
        figures[gate] = {
            "input_saved": 1 - sum(r.model_samples for r in runs) / base,
            "tts_wer": wer(refs, [r.text for r in tts_runs[gate]]).rate,
            "human_agreement": agreement(offline, " ".join(r.text for r in human_runs[gate])),
            "edge_words_lost": sum(
                edge_words_lost(u, g, sp) for u, g, sp in zip(ungated, runs, spans, strict=True)
            ),
            "edge_words": 2 * sum(len(sp) for sp in spans),
            "pauses_ended": sum(pauses_ended(r, sp) for r, sp in zip(runs, spans, strict=True)),
            "pauses": sum(len(sp) - 1 for sp in spans),
        }
    return figures


@dataclass
class SpanGate(JudgesInline):
    """An oracle gate: it knows where the utterances lie (``pad`` samples of margin)."""

    spans: Sequence[tuple[int, int]]
    pad: int
    stride: int = 320

    def speech_frames(self, window: Window) -> Mask:
        return speech_mask(window, self.spans, self.pad, self.stride)


def span_ceiling(
    e: Any, streams: Sequence[NoisyStream], options: StreamOptions, pad_s: float = 0.0
) -> float:
    """Input a gate that knew the utterance spans would save at these windows under the gate
    rule (:func:`~streamasr.server.engine.gate.window_run`), with ``pad_s`` of margin."""
    run = total = 0
    spec = e.manifest.input
    quantum = RUN_QUANTUM_FRAMES if e.scheduler.batched else 1
    for s in streams:
        windower = SlidingWindower(
            WindowPlan.from_seconds(
                options.left_s, options.hop_s, options.lookahead_s, e.manifest.input
            ),
            spec,
            e.manifest.name,
        )
        gate = SpanGate(s.spans, round(pad_s * RATE), spec.frame_stride)
        for w in windower.push(s.audio) + windower.finish():
            total += w.samples.size
            plan = GateRuns(gate, spec, 1, 0, quantum).plan(w)
            run += 0 if plan is None else plan[1].size
    return 1 - run / max(total, 1)


def vad_cost(e: Any, streams: Sequence[NoisyStream]) -> dict[str, float]:
    """Process CPU seconds of the Silero gate alone per audio second (one 1 s window at a time)."""
    vad: SileroVad | None = e.vad
    if vad is None:
        return {}
    audio_s = sum(s.audio.size for s in streams) / RATE
    before = own_cpu_s()
    for s in streams:
        gate = SileroGate(vad, VadGateConfig(), 320)
        for start in range(0, s.audio.size - RATE, RATE):
            window = Window(0, s.audio[start : start + RATE], start, 0, 50, 0, 50, False)
            gate.speech_frames(window)
    cpu = own_cpu_s() - before
    return {"cpu_s_per_audio_s": cpu / audio_s, "audio_s": audio_s}


def measure(
    folder: Path, tts: list[fixtures.Utterance], human: list[fixtures.Utterance]
) -> dict[str, Any]:
    """Every condition x gate on ``folder`` (int8), and the VAD's CPU per audio second."""
    figures: dict[str, Any] = {"conditions": {}}
    with fixtures.engine(folder, "int8") as e:
        if e.vad is None:
            raise RuntimeError(f"{folder} has no VAD file: re-export it (asr-export --force)")
        for condition in conditions():
            tts_streams = build(tts, [s for s, _ in human], condition)
            human_streams = build(human, [s for s, _ in tts], condition)
            log.info("noise condition %s ...", condition)
            figures["conditions"][condition] = measure_condition(e, tts_streams, human_streams)
        figures["vad"] = vad_cost(e, build(tts, [s for s, _ in human], "white-10"))
        options = e.stream(options=StreamOptions.model_defaults()).options
        quiet = build(tts, [], "quiet") + build(human, [], "quiet")
        figures["span_ceiling"] = span_ceiling(e, quiet, options)
        figures["windows"] = {
            "left_s": options.left_s,
            "hop_s": options.hop_s,
            "lookahead_s": options.lookahead_s,
        }
        figures["audio_s"] = {
            "tts": sum(s.audio.size for s in build(tts, [], "quiet")) / RATE,
            "human": sum(s.audio.size for s in build(human, [], "quiet")) / RATE,
        }
    return figures


def markdown(f: dict[str, Any]) -> str:
    w, audio = f["windows"], f["audio_s"]
    lines = [
        f"Fixture `tts-en-ctc-small` int8 at its default windows (L {w['left_s']:g} / C "
        f"{w['hop_s']:g} / R {w['lookahead_s']:g} s); the tts and human dev sets in streams of "
        f"{GROUP} utterances with {PAUSE_S:g} s pauses ({audio['tts']:.0f} s and "
        f"{audio['human']:.0f} s), noise over the whole stream at the SNR against the speech. "
        "Input saved: model input skipped against no gate; WER: tts vs references; agreement: "
        "human streams vs the offline transcript of the same noisy audio; edge words lost: "
        "first/last word of each utterance (as the ungated stream has it) with no overlapping "
        "word once gated; pauses ended: pauses between utterances in which a final ends (the "
        "endpoint fired; skipped and blanked frames count as blanks, so the VAD ends segments).",
        "",
        "| condition | gate | input saved | tts WER | WER vs no gate, pt | human agreement "
        "| edge words lost | pauses ended |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for condition, gates in f["conditions"].items():
        none = gates["none"]["tts_wer"]
        for gate, g in gates.items():
            lines.append(
                f"| {condition} | {gate} | {g['input_saved']:.1%} | {g['tts_wer']:.4f} "
                f"| {100 * (g['tts_wer'] - none):+.1f} | {g['human_agreement']:.4f} "
                f"| {g['edge_words_lost']} / {g['edge_words']} "
                f"| {g['pauses_ended']} / {g['pauses']} |"
            )
    lines += [
        "",
        f"Ceiling: a gate that knew where each utterance lies would save "
        f"{f['span_ceiling']:.1%} of the input at these windows under the same rule (the hop "
        "decides, runs trimmed to the speech), with no margin; the utterance files' own edges "
        "of silence are not counted as pause, so a VAD can beat it.",
    ]
    vad = f.get("vad") or {}
    if vad:
        lines += [
            "",
            f"Silero VAD alone: {1000 * vad['cpu_s_per_audio_s']:.1f} ms of CPU per audio "
            f"second ({vad['audio_s']:.0f} s, one 512-sample frame per call, one thread).",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench noise", description=__doc__)
    parser.add_argument("--shared", type=Path, default=fixtures.DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stream_bench"))
    parser.add_argument("--model", action=fixtures.ExportFolder, help="export (default: fixture)")
    parser.add_argument("--limit", type=int, default=None, help="first N utterances per set")
    parser.add_argument("--out", type=Path, default=None, help="raw figures (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    folder = args.model or fixtures.export_fixture(args.shared, args.work)
    tts = fixtures.load_set(args.shared / "speech" / "dev" / "tts")[: args.limit]
    human = fixtures.load_set(args.shared / "speech" / "dev" / "human")[: args.limit]
    figures = measure(folder, tts, human)
    print(markdown(figures))
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
