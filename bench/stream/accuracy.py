"""``bench.stream.bench``'s accuracy sections on the fixture model: fidelity and the energy gate.

* ``fidelity``: the fixture checkpoint (exported fp32 and int8) on ``speech/dev/tts``: WER and
  CER of the offline reference (whole utterance, one window) and of streaming at the default
  settings, gate on and off; on ``speech/dev/human``, character agreement of the streaming
  transcripts with the offline ones.
* ``gate``: the energy gate on the tts utterances separated by 2 s of quiet noise: windows
  skipped, model input saved, WER with and without it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamasr.server.engine.offline import stream_array, transcribe
from streamasr.server.inference.runtime import Device
from streamasr.server.options.stream import StreamOptions

from ..common.fixtures import Utterance, engine
from ..common.scoring import agreement, cer, wer
from .sim import RATE, run_timed

# --- fidelity ----------------------------------------------------------------------------------


def fidelity_figures(
    folder: Path,
    tts: list[Utterance],
    human: list[Utterance],
    precisions: Sequence[str] = ("fp32", "int8"),
    device: Device = "cpu",
) -> dict[str, Any]:
    """Offline and streaming (defaults, 20 ms frames, gate on and off) WER/CER on ``tts`` and
    streaming-vs-offline character agreement on ``human``, per precision."""
    figures: dict[str, Any] = {}
    refs = [r for _, r in tts]
    for precision in precisions:
        with engine(folder, precision, device=device) as e:
            offline = [transcribe(e, s, RATE).text for s, _ in tts]
            gated = [stream_array(e, s, RATE, frame_sizes=[320]).text for s, _ in tts]
            ungated = [
                stream_array(e, s, RATE, StreamOptions(gate=None), [320]).text for s, _ in tts
            ]
            h_off = [transcribe(e, s, RATE).text for s, _ in human]
            h_str = [stream_array(e, s, RATE, frame_sizes=[320]).text for s, _ in human]
            h_ungated = [
                stream_array(e, s, RATE, StreamOptions(gate=None), [320]).text for s, _ in human
            ]
        figures[precision] = {
            "tts_offline_wer": wer(refs, offline).rate,
            "tts_offline_cer": cer(refs, offline).rate,
            "tts_stream_wer": wer(refs, gated).rate,
            "tts_stream_cer": cer(refs, gated).rate,
            "tts_stream_wer_no_gate": wer(refs, ungated).rate,
            "tts_bound": 1.05 * wer(refs, offline).rate + 0.003,
            "human_agreement": agreement(" | ".join(h_off), " | ".join(h_str)),
            "human_agreement_min": min(agreement(a, b) for a, b in zip(h_off, h_str, strict=True)),
            "human_agreement_no_gate": agreement(" | ".join(h_off), " | ".join(h_ungated)),
            "human_offline_wer": wer([r for _, r in human], h_off).rate,
            "human_stream_wer": wer([r for _, r in human], h_str).rate,
        }
    return figures


def fidelity_table(figures: dict[str, Any]) -> str:
    lines = [
        "| precision | tts WER offline | tts WER stream | bound 1.05x+0.3pt | stream, gate off "
        "| tts CER offline | tts CER stream | human char agreement (all / worst / gate off) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for precision, f in figures.items():
        lines.append(
            f"| {precision} | {f['tts_offline_wer']:.4f} | {f['tts_stream_wer']:.4f} "
            f"| {f['tts_bound']:.4f} | {f['tts_stream_wer_no_gate']:.4f} "
            f"| {f['tts_offline_cer']:.4f} | {f['tts_stream_cer']:.4f} "
            f"| {f['human_agreement']:.4f} / {f['human_agreement_min']:.4f} "
            f"/ {f['human_agreement_no_gate']:.4f} |"
        )
    return "\n".join(lines)


def fidelity(folder: Path, tts: list[Utterance], human: list[Utterance]) -> dict[str, Any]:
    figures = fidelity_figures(folder, tts, human)
    print("\n### Fidelity (fixture model, default stream settings, 20 ms frames)\n")
    print(fidelity_table(figures))
    return figures


# --- gate --------------------------------------------------------------------------------------


def gate(folder: Path, tts: list[Utterance]) -> dict[str, Any]:
    """Utterances separated by 2 s of quiet noise (about -60 dBFS) in one stream per 5."""
    rng = np.random.default_rng(0)
    pause = (0.001 * rng.standard_normal(2 * RATE)).astype(np.float32)
    groups = [tts[i : i + 5] for i in range(0, len(tts), 5)]
    streams = [np.concatenate([x for s, _ in g for x in (pause, s)] + [pause]) for g in groups]
    refs = [" ".join(r for _, r in g) for g in groups]
    figures: dict[str, Any] = {}
    with engine(folder, "int8") as e:
        for label, options in (
            ("gate on", StreamOptions()),
            ("gate off", StreamOptions(gate=None)),
        ):
            texts, model, skipped, windows = [], 0, 0, 0
            started = time.perf_counter()
            for samples in streams:
                run = run_timed(e, samples, options)
                texts.append(run.text)
                model, skipped, windows = (
                    model + run.model_samples,
                    skipped + run.skipped,
                    windows + run.windows,
                )
            figures[label] = {
                "wer": wer(refs, texts).rate,
                "windows": windows,
                "skipped": skipped,
                "model_samples": model,
                "seconds": time.perf_counter() - started,
            }
    audio = sum(s.size for s in streams) / RATE
    speech = sum(s.size for s, _ in tts) / RATE
    on, off = figures["gate on"], figures["gate off"]
    print(
        f"\n### Energy gate ({audio:.0f} s of audio, {speech:.0f} s of it speech; fixture int8)\n"
    )
    print("| gate | WER | windows skipped | model input (s of audio) | wall time s |")
    print("| --- | --- | --- | --- | --- |")
    for label, f in figures.items():
        print(
            f"| {label} | {f['wer']:.4f} | {f['skipped']}/{f['windows']} "
            f"| {f['model_samples'] / RATE:.1f} | {f['seconds']:.2f} |"
        )
    print(f"\nmodel input saved: {1 - on['model_samples'] / off['model_samples']:.1%}")
    figures["audio_s"], figures["speech_s"] = audio, speech
    return figures
