"""Streaming recognition figures: fidelity, the latency/accuracy curve, compute and capacity.

    python -m bench.stream_bench [--quick] [--sections fidelity grid gate compute capacity]
                                 [--shared ../shared] [--work DIR] [--out bench/out]

* ``fidelity``: the fixture checkpoint (``../shared/models/tts-en-ctc-small``, exported fp32 and
  int8) on ``speech/dev/tts``: WER and CER of the offline reference (whole utterance, one
  window) and of streaming at the default settings, gate on and off; on ``speech/dev/human``,
  character agreement of the streaming transcripts with the offline ones.
* ``grid``: for hop C x left context L x lookahead R (the issue's grid, plus the candidates for
  the defaults), fixture int8 on ``speech/dev/tts`` with the gate off: WER, and the word and frame
  latencies of ``bench.stream_sim`` (single stream, 2 CPU threads).
* ``gate``: the energy gate on the tts utterances separated by 2 s of quiet noise: windows
  skipped, model input saved, WER with and without it.
* ``compute``: a random-weight wav2vec2-base-960h (95M, ``../shared/models/configs``) exported
  int8, on the human dev speech: compute time per audio second offline (one window per
  utterance) and streaming (defaults), on 2 CPU threads.
* ``capacity``: the same model, N concurrent real-time streams (asyncio clients, 20 ms frames)
  for increasing N: p50/p95 frame latency (partial and final latencies are recorded too); the
  most streams held with p95 <= 1.5 s, next to the ceiling implied by raw onnxruntime throughput
  on the same steady windows. ``bench.service_bench`` runs the same levels through the websocket
  server.

Markdown tables go to stdout, raw figures to ``OUT/stream_bench.json``. ``--quick`` runs a
reduced grid and shorter capacity runs; the full grid (64 points) takes about 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine import Engine, EngineConfig
from streamasr.server.offline import read_audio, stream_array, transcribe
from streamasr.server.runtime import Device, RuntimeConfig
from streamasr.server.scheduler import SchedulerConfig
from streamasr.server.stream import StreamOptions

from .scoring import agreement, cer, wer
from .stream_sim import (
    RATE,
    final_latencies,
    frame_latencies,
    partial_latencies,
    percentiles,
    play_real_time,
    run_timed,
    start_offsets,
    word_latencies,
)

log = logging.getLogger("bench.stream_bench")

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
THREADS = 2
LATENCY_BUDGET_S = 1.5

HOPS = (0.32, 0.64, 1.0, 2.0)
LEFTS = (0.0, 1.0, 2.0, 4.0)
LOOKAHEADS = (0.0, 0.16, 0.32, 0.64)
CANDIDATES = tuple(itertools.product((0.8, 1.0, 1.28), (0.32, 0.48, 0.64), (0.16, 0.32)))
"""(hop, left, lookahead) points near the compute budget, measured beside the issue's grid."""
QUICK_GRID = (
    (0.32, 1.0, 0.32),
    (0.64, 1.0, 0.32),
    (1.0, 0.0, 0.0),
    (1.0, 1.0, 0.32),
    (2.0, 2.0, 0.32),
)

Utterance = tuple[NDArray[np.float32], str]


# --- data and models ---------------------------------------------------------------------------


def dev_set(folder: Path) -> list[tuple[Path, str]]:
    """(audio file, reference) of a ``speech/dev`` folder, in ``transcripts.tsv`` order."""
    rows = (folder / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(folder / name, ref) for name, ref, *_ in (r.split("\t") for r in rows if r.strip())]


def load_set(folder: Path) -> list[Utterance]:
    """(16 kHz mono samples, reference) of a ``speech/dev`` folder."""
    out = []
    for path, reference in dev_set(folder):
        samples, rate = read_audio(path)
        if rate != RATE:
            raise SystemExit(f"{path}: {rate} Hz, expected {RATE}")
        out.append((np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), reference))
    return out


def export_fixture(
    shared: Path, work: Path, precisions: tuple[str, ...] = ("fp32", "int8")
) -> Path:
    """The fixture checkpoint exported into ``work/models`` (kept there between runs)."""
    from streamasr.export.pipeline import ExportConfig, run_export

    checkpoint = shared / "models" / "tts-en-ctc-small"
    config = ExportConfig(str(checkpoint), work / "models", precisions=precisions)
    return run_export(config).folder


TINY_ARCHITECTURE: dict[str, Any] = {
    "model_type": "wav2vec2",
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "conv_dim": [64] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "vocab_size": 32,
    "_feature_extractor": {"do_normalize": True, "return_attention_mask": False},
}
"""A tiny wav2vec2 (base-960h layout, 2 layers of 64): mechanics of the benchmarks in seconds."""
TINY = "tiny"


def architecture(shared: Path, name: str) -> dict[str, Any]:
    """An architecture of ``../shared/models/configs`` by file stem, or ``tiny``."""
    from streamasr.export.random_checkpoint import load_architecture

    if name == TINY:
        return dict(TINY_ARCHITECTURE)
    return load_architecture(shared / "models" / "configs" / f"{name}.json")


def random_checkpoint(shared: Path, work: Path, name: str) -> Path:
    """Architecture ``name`` with seeded random weights, saved once in ``work/checkpoints``."""
    from streamasr.export.random_checkpoint import save_random_checkpoint

    checkpoint = work / "checkpoints" / f"{name}-random"
    if not (checkpoint / "config.json").is_file():
        save_random_checkpoint(architecture(shared, name), checkpoint)
    return checkpoint


def export_random(
    shared: Path, work: Path, name: str, precisions: tuple[str, ...] = ("fp32", "int8")
) -> Path:
    """:func:`random_checkpoint` exported into ``work/models`` (cached there)."""
    from streamasr.export.pipeline import ExportConfig, run_export

    checkpoint = random_checkpoint(shared, work, name)
    config = ExportConfig(str(checkpoint), work / "models", precisions=precisions)
    return run_export(config).folder


@contextmanager
def engine(
    folder: Path,
    precision: str,
    threads: int = THREADS,
    split: bool = True,
    device: Device = "cpu",
    **scheduler: Any,
) -> Iterator[Engine]:
    runtime = RuntimeConfig(
        device=device, precision=precision, intra_op_threads=threads, split_int8_batches=split
    )
    config = EngineConfig(runtime, SchedulerConfig(**{"max_wait_ms": 0.0, **scheduler}))
    with Engine(folder, config) as e:
        yield e


def plan_options(hop: float, left: float, lookahead: float, **kw: Any) -> StreamOptions:
    return StreamOptions(left_s=left, hop_s=hop, lookahead_s=lookahead, **kw)


def steady_window(options: StreamOptions) -> int:
    """Samples of a steady window: left context + hop + lookahead + the 80-sample overhang of
    the wav2vec2 layouts the capacity runs use."""
    return round((options.left_s + options.hop_s + options.lookahead_s) * RATE) + 80


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


# --- latency / accuracy grid ------------------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    hop: float
    left: float
    lookahead: float
    wer: float
    cer: float
    word: dict[str, float]
    frame: dict[str, float]
    partial: dict[str, float]
    input_ratio: float
    """Model input samples per audio sample (the compute multiplier of the geometry)."""


def grid_point(e: Engine, tts: list[Utterance], hop: float, left: float, look: float) -> GridPoint:
    options = plan_options(hop, left, look, gate=None)
    refs, hyps, words, frame_lat, partial_lat = [], [], [], [], []
    model = audio = 0
    for samples, reference in tts:
        run = run_timed(e, samples, options)
        refs.append(reference)
        hyps.append(run.text)
        words += word_latencies(run)
        frame_lat += frame_latencies(run, options, e.manifest.input.num_frames(samples.size))
        partial_lat += partial_latencies(run)
        model += run.model_samples
        audio += samples.size
    return GridPoint(
        hop,
        left,
        look,
        wer(refs, hyps).rate,
        cer(refs, hyps).rate,
        percentiles(words),
        percentiles(frame_lat),
        percentiles(partial_lat),
        round(model / audio, 3),
    )


def grid_points(mode: str) -> list[tuple[float, float, float]]:
    """(hop, left, lookahead) points: the issue's 64-point grid and the candidates, or a few."""
    if mode == "quick":
        return list(QUICK_GRID)
    points = list(itertools.product(HOPS, LEFTS, LOOKAHEADS))
    return points + [p for p in CANDIDATES if p not in points]


def grid_figures(
    folder: Path, tts: list[Utterance], points: Sequence[tuple[float, float, float]]
) -> dict[str, Any]:
    """WER and latencies of each geometry (fixture int8, gate off, single stream)."""
    with engine(folder, "int8") as e:
        offline = wer([r for _, r in tts], [transcribe(e, s, RATE).text for s, _ in tts]).rate
        results = []
        for hop, left, look in points:
            started = time.perf_counter()
            results.append(grid_point(e, tts, hop, left, look))
            log.info("grid C=%s L=%s R=%s: %.1f s", hop, left, look, time.perf_counter() - started)
    return {"offline_wer": offline, "points": [p.__dict__ for p in results]}


def grid_table(figures: dict[str, Any]) -> str:
    lines = [
        "| C s | L s | R s | WER | CER | word p50 | word p95 | frame p50 | frame p95 | input x |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in figures["points"]:
        lines.append(
            f"| {p['hop']} | {p['left']} | {p['lookahead']} | {p['wer']:.4f} | {p['cer']:.4f} "
            f"| {p['word']['p50']:.3f} | {p['word']['p95']:.3f} | {p['frame']['p50']:.3f} "
            f"| {p['frame']['p95']:.3f} | {p['input_ratio']:.2f} |"
        )
    return "\n".join(lines)


def grid(folder: Path, tts: list[Utterance], mode: str) -> dict[str, Any]:
    figures = grid_figures(folder, tts, grid_points(mode))
    print(
        "\n### Latency / accuracy (fixture int8, tts set, gate off; "
        f"offline WER {figures['offline_wer']:.4f})\n"
    )
    print(grid_table(figures))
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


# --- compute (base-960h size, random weights) --------------------------------------------------


def timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


COMPUTE_SETUPS: dict[str, StreamOptions | None] = {
    "offline": None,
    "stream defaults (C=1.0 L=0.32 R=0.32), gate off": StreamOptions(gate=None),
    "stream defaults, gate on": StreamOptions(),
    "stream C=1.0 L=0.32 R=0.16": plan_options(1.0, 0.32, 0.16, gate=None),
    "stream C=1.28 L=0.32 R=0.32": plan_options(1.28, 0.32, 0.32, gate=None),
    "stream C=1.0 L=1.0 R=0.32": plan_options(1.0, 1.0, 0.32, gate=None),
    "stream C=2.0 L=1.0 R=0.32": plan_options(2.0, 1.0, 0.32, gate=None),
}


def run_setup(e: Engine, samples: NDArray[np.float32], options: StreamOptions | None) -> float:
    if options is None:
        return timed(transcribe, e, samples, RATE)
    return timed(stream_array, e, samples, RATE, options, [320])


def compute(folder: Path, speech: list[Utterance], repeats: int) -> dict[str, Any]:
    """Each repeat runs every setup on each utterance back to back, in a rotating order; ratios
    to offline are taken within a repeat and their median reported, because this machine's
    speed drifts by up to 2x over minutes (shared host)."""
    audio = sum(s.size for s, _ in speech) / RATE
    figures: dict[str, Any] = {"audio_s": audio}
    labels = list(COMPUTE_SETUPS)
    for threads, workers in ((THREADS, 1), (1, THREADS)):
        key = f"{workers} worker(s) x {threads} thread(s)"
        times: dict[str, list[float]] = {label: [] for label in labels}
        with engine(folder, "int8", threads=threads, workers=workers) as e:
            run_setup(e, speech[0][0], None)  # warm-up
            for r in range(repeats):
                totals = dict.fromkeys(labels, 0.0)
                for i, (samples, _) in enumerate(speech):
                    k = (r + i) % len(labels)
                    for label in labels[k:] + labels[:k]:
                        totals[label] += run_setup(e, samples, COMPUTE_SETUPS[label])
                for label, seconds in totals.items():
                    times[label].append(seconds)
        offline = times["offline"]
        figures[key] = {
            label: {
                "seconds": t,
                "per_audio_s": float(np.median(t)) / audio,
                "ratio": float(np.median([a / b for a, b in zip(t, offline, strict=True)])),
            }
            for label, t in times.items()
        }
    print(
        f"\n### Compute (random-weight wav2vec2-base-960h, int8, {audio:.1f} s of human "
        f"speech, single stream, median of {repeats} rotated repeats)\n"
    )
    keys = [k for k in figures if k != "audio_s"]
    print("| mode | " + " | ".join(f"{k}: s per audio s | x offline" for k in keys) + " |")
    print("| --- |" + " --- | --- |" * len(keys))
    for label in labels:
        cells = [
            f"{figures[k][label]['per_audio_s']:.4f} | {figures[k][label]['ratio']:.2f}"
            for k in keys
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return figures


# --- capacity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the two cores are used: workers x intra-op threads, int8 batches split or not."""

    workers: int
    threads: int
    split: bool

    @property
    def label(self) -> str:
        split = "windows one by one" if self.split else "batched int8"
        return f"{self.workers} worker(s) x {self.threads} thread(s), {split}"


LAYOUTS = {
    "2x1": Layout(2, 1, True),
    "1x2": Layout(1, 2, True),
    "2x1-batched": Layout(2, 1, False),
}
"""``2x1`` is the engine's default on a 2-core CPU."""


def raw_ceiling(
    folder: Path, window: int, hop_s: float, layout: Layout, duration_s: float = 3.0
) -> dict[str, Any]:
    """Real-time streams that onnxruntime alone sustains on steady windows: each of
    ``layout.workers`` threads calls the session back to back with batches of B windows (one
    call per window when split), for ``duration_s``; streams = windows per second x hop."""
    import threading

    import onnxruntime as ort

    from streamasr.server.manifest import read_manifest

    manifest = read_manifest(folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = layout.threads
    options.log_severity_level = 3
    path = str(folder / manifest.entry("int8").file)
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = manifest.input.name
    x = (0.1 * np.random.default_rng(0).standard_normal((8, window))).astype(np.float32)
    figures: dict[str, Any] = {}
    for batch in (1,) if layout.split else (1, 2, 4, 8):
        session.run(None, {name: x[:batch]})
        done = [0] * layout.workers
        stop_at = time.perf_counter() + duration_s

        def work(
            i: int, batch: int = batch, stop_at: float = stop_at, done: list[int] = done
        ) -> None:
            while time.perf_counter() < stop_at:
                session.run(None, {name: x[:batch]})
                done[i] += batch

        threads = [threading.Thread(target=work, args=(i,)) for i in range(layout.workers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = sum(done) / (time.perf_counter() - started)
        figures[str(batch)] = {"windows_per_s": rate, "streams": rate * hop_s}
    return figures


async def _simulate(
    e: Engine, pieces: list[NDArray[np.float32]], options: StreamOptions
) -> list[Any]:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    offsets = start_offsets(len(pieces), options.hop_s)
    runs = [
        play_real_time(e, p, options, start + float(o))
        for p, o in zip(pieces, offsets, strict=True)
    ]
    return list(await asyncio.gather(*runs))


def client_pieces(audio: NDArray[np.float32], n: int, seconds: float) -> list[NDArray[np.float32]]:
    """``n`` streams of ``seconds`` each, from spread-out offsets of ``audio`` (tiled when
    shorter)."""
    length = int(seconds * RATE)
    if audio.size < length:
        audio = np.resize(audio, length).astype(np.float32)
    starts = np.linspace(0, audio.size - length, n).astype(int) if n > 1 else [0]
    return [np.ascontiguousarray(audio[s : s + length]) for s in starts]


def load_level(
    e: Engine, audio: NDArray[np.float32], n: int, seconds: float, options: StreamOptions
) -> dict[str, Any]:
    """``n`` real-time streams of ``seconds`` each, from spread-out offsets of ``audio``.

    ``p50``/``p95``: frame latency; ``partial`` and ``final``: the partial and final latencies
    of ``bench.stream_sim`` (the definitions ``bench.service_bench`` measures through the
    server)."""
    pieces = client_pieces(audio, n, seconds)
    busy_before, batches_before = e.scheduler.stats.busy_s, e.scheduler.stats.batches
    windows_before = e.scheduler.stats.windows
    started = time.perf_counter()
    runs = asyncio.run(_simulate(e, pieces, options))
    wall = time.perf_counter() - started
    frames_total = e.manifest.input.num_frames(pieces[0].size)
    latencies = [x for r in runs for x in frame_latencies(r, options, frames_total)]
    batches = e.scheduler.stats.batches - batches_before
    return {
        **percentiles(latencies),
        "partial": percentiles([x for r in runs for x in partial_latencies(r)]),
        "final": percentiles([x for r in runs for x in final_latencies(r)]),
        "busy": (e.scheduler.stats.busy_s - busy_before) / wall / e.scheduler.config.workers,
        "mean_batch": (e.scheduler.stats.windows - windows_before) / max(1, batches),
        "lagging": sum(r.lagging for r in runs),
    }


@contextmanager
def layout_engine(folder: Path, layout: Layout, precision: str = "int8") -> Iterator[Engine]:
    """The engine as the capacity runs use it (the server's defaults for the ``2x1`` layout)."""
    with engine(
        folder,
        precision,
        layout.threads,
        layout.split,
        workers=layout.workers,
        max_batch=8,
        max_wait_ms=5.0,
    ) as e:
        yield e


def sweep(
    folder: Path, layout: Layout, audio: NDArray[np.float32], seconds: float, start: int
) -> tuple[int, dict[str, Any]]:
    """Add streams one at a time from ``start`` until p95 frame latency passes the budget (or
    remove them until it holds, when ``start`` is already too many)."""
    options = StreamOptions()
    levels: dict[str, Any] = {}
    held = 0
    with layout_engine(folder, layout) as e:
        n = start
        while 1 <= n <= 40:
            level = load_level(e, audio, n, seconds, options)
            levels[str(n)] = level
            log.info("%s, %d streams: p95 %.3f s", layout.label, n, level["p95"])
            if level["p95"] <= LATENCY_BUDGET_S:
                held = max(held, n)
                if str(n + 1) in levels:
                    break  # came down from a failing level
                n += 1
            elif held or n == 1:
                break
            else:
                n -= 1  # the first level already failed: come down
    return held, levels


def capacity(
    folder: Path, speech: list[Utterance], quick: bool, layouts: Sequence[str]
) -> dict[str, Any]:
    options = StreamOptions()
    audio = np.concatenate([s for s, _ in speech])
    seconds = 10.0 if quick else 20.0
    window = steady_window(options)
    results: dict[str, Any] = {"seconds": seconds, "window": window, "layouts": {}}
    for layout in (LAYOUTS[name] for name in layouts):
        before = raw_ceiling(folder, window, options.hop_s, layout)
        best = max(v["streams"] for v in before.values())
        held, levels = sweep(folder, layout, audio, seconds, max(1, int(best * 0.7)))
        # measured again: this host's speed drifts, so the ceiling is bracketed
        after = raw_ceiling(folder, window, options.hop_s, layout)
        results["layouts"][layout.label] = {
            "ceiling": before,
            "ceiling_after": after,
            "ceiling_streams": best,
            "ceiling_streams_after": max(v["streams"] for v in after.values()),
            "levels": levels,
            "held": held,
        }
    print_capacity(results, options)
    return results


def print_capacity(results: dict[str, Any], options: StreamOptions) -> None:
    print(
        f"\n### Capacity (random-weight base-960h int8, 2 CPU cores, default settings, "
        f"{results['seconds']:.0f} s real-time streams in 20 ms frames, frame latency)\n"
    )
    print("| layout | streams | p50 s | p95 s | runner busy | mean batch | lagging reports |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results["layouts"].items():
        for n, f in r["levels"].items():
            print(
                f"| {label} | {n} | {f['p50']:.3f} | {f['p95']:.3f} | {f['busy']:.0%} "
                f"| {f['mean_batch']:.2f} | {f['lagging']} |"
            )
    print(
        f"\nraw onnxruntime on steady windows ({results['window']} samples, hop "
        f"{options.hop_s} s), real-time streams sustained, before / after the sweep:\n"
    )
    print("| layout | batch | streams |")
    print("| --- | --- | --- |")
    for label, r in results["layouts"].items():
        for batch, f in r["ceiling"].items():
            after = r["ceiling_after"][batch]["streams"]
            print(f"| {label} | {batch} | {f['streams']:.2f} / {after:.2f} |")
    print(
        f"\n| layout | held, p95 <= {LATENCY_BUDGET_S} s | ceiling before / after "
        "| held / mean ceiling | runner busy at the last level held |"
    )
    print("| --- | --- | --- | --- | --- |")
    for label, r in results["layouts"].items():
        ceiling = (r["ceiling_streams"] + r["ceiling_streams_after"]) / 2
        busy = r["levels"].get(str(r["held"]), {}).get("busy", float("nan"))
        print(
            f"| {label} | {r['held']} | {r['ceiling_streams']:.2f} / "
            f"{r['ceiling_streams_after']:.2f} | {r['held'] / ceiling:.0%} | {busy:.0%} |"
        )


# --- main ---------------------------------------------------------------------------------------

SECTIONS = ("fidelity", "grid", "gate", "compute", "capacity")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="reduced grid, short capacity runs")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stream_bench"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--layouts",
        nargs="+",
        choices=list(LAYOUTS),
        default=list(LAYOUTS),
        help="capacity: workers x intra-op threads (and int8 batching) to sweep",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("streamasr.export", "root"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    log.setLevel(logging.INFO)

    tts = load_set(args.shared / "speech" / "dev" / "tts")
    human = load_set(args.shared / "speech" / "dev" / "human")
    figures: dict[str, Any] = {"threads": THREADS, "quick": args.quick}
    if {"fidelity", "grid", "gate"} & set(args.sections):
        fixture = export_fixture(args.shared, args.work)
        if "fidelity" in args.sections:
            figures["fidelity"] = fidelity(fixture, tts, human)
        if "grid" in args.sections:
            figures["grid"] = grid(fixture, tts, "quick" if args.quick else "full")
        if "gate" in args.sections:
            figures["gate"] = gate(fixture, tts)
    if {"compute", "capacity"} & set(args.sections):
        base = export_random(args.shared, args.work, "wav2vec2-base-960h")
        if "compute" in args.sections:
            figures["compute"] = compute(base, human, args.repeats)
        if "capacity" in args.sections:
            figures["capacity"] = capacity(base, human, args.quick, args.layouts)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = ["stream_bench", *(["quick"] if args.quick else [])]
    parts += [] if set(args.sections) == set(SECTIONS) else sorted(args.sections)
    name = "-".join(parts) + ".json"
    (args.out / name).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nraw figures: {args.out / name}")


if __name__ == "__main__":
    main()
