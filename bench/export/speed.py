"""export_bench's offline speed: every runtime (PyTorch, the transformers pipeline, optimum,
our ONNX files) loaded side by side on the CPU and timed in turn, round after round, with runs
retaken while other processes were busy."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.manifest import PRECISIONS

from ..common.proc import own_cpu_s, system_cpu_s
from .results import Sample, Speed, Workload

log = logging.getLogger("bench.export_bench")  # its log lines are export_bench's

THREADS = 2
WARM_UP_RUNS = 2
"""onnxruntime records its memory pattern on a session's first run and allocates it on the
second: both page-fault some hundred MB in (64k faults for base at 20 s), so timing starts
with the third run, for every runtime alike."""
SETTLE_S = 1.0
"""Pause before each timed run: OpenMP and onnxruntime worker threads of the previous runtime
keep spinning for a while after its run and would slow the next one down."""
BUSY = 0.1
"""A run during which other processes used more than this share of the CPUs is retaken..."""
RETAKES = 3
"""... at most this many times (then kept, and its share shown in the tables)."""
MIN_MEASURED_S = 0.25

RUNTIMES = {
    "torch": "PyTorch eager",
    "pipeline": "transformers pipeline (chunk_length_s=10)",
    "optimum": "ORTModelForCTC",
    "fp32": "ours fp32",
    "int8": "ours int8",
    "fp16": "ours fp16 (CPU, not its target)",
    "fp16-cuda": "ours fp16 (CUDA)",
    "fp32-cuda": "ours fp32 (CUDA)",
}
"""Runtime ids and labels, in table order."""
CHUNK_LENGTH_S = 10.0
"""The transformers pipeline's ``chunk_length_s`` (its long-audio mode)."""

Run = Callable[[], object]
"""One inference on the workload."""


def session_options() -> Any:
    """CPU session settings shared by every ONNX runtime measured."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def cpu_session(path: Path, options: Any = None) -> Any:
    """An onnxruntime CPU session on an ONNX file."""
    import onnxruntime as ort

    options = options if options is not None else session_options()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_torch_model(checkpoint: Path) -> Any:
    """The checkpoint as a transformers user loads it (default attention), in eval mode."""
    from transformers import AutoModelForCTC

    return AutoModelForCTC.from_pretrained(checkpoint).eval()


def torch_run(model: Any, work: Workload) -> Run:
    """PyTorch eager mode on ``THREADS`` threads."""
    torch.set_num_threads(THREADS)
    inputs = {work.name: torch.from_numpy(work.x)}

    def run() -> object:
        with torch.inference_mode():
            return model(**inputs).logits

    return run


def optimum_run(folder: Path, work: Workload) -> Run:
    """optimum's ORTModelForCTC on its own export, same session settings as ours."""
    from optimum.onnxruntime import ORTModelForCTC

    model = ORTModelForCTC.from_pretrained(folder, session_options=session_options())
    inputs = {work.name: torch.from_numpy(work.x)}
    return lambda: model(**inputs).logits


def pipeline_run(model: Any, checkpoint: Path, work: Workload) -> Run:
    """transformers' ASR pipeline on the raw audio, in ``CHUNK_LENGTH_S`` chunks (its default
    stride), built from the local checkpoint folder: feature extraction, the model and CTC
    decoding, as a transformers user transcribes a long file."""
    from transformers import AutoFeatureExtractor, AutoTokenizer, pipeline

    torch.set_num_threads(THREADS)
    asr = pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(checkpoint),
        feature_extractor=AutoFeatureExtractor.from_pretrained(checkpoint),
        chunk_length_s=CHUNK_LENGTH_S,
        device="cpu",
    )
    inputs = {"raw": work.signal, "sampling_rate": SAMPLE_RATE}

    def run() -> object:
        with torch.inference_mode():
            return asr(dict(inputs))

    return run


def onnx_run(path: Path, work: Workload) -> Run:
    """One of our files through a plain onnxruntime session."""
    session = cpu_session(path)
    feeds = {work.name: work.x}
    return lambda: session.run(None, feeds)


def cuda_available() -> bool:
    """Whether onnxruntime offers its CUDA provider here."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def cuda_run(path: Path, work: Workload) -> Run:
    """One of our files on the GPU (input copied in, logits copied back on every run)."""
    import onnxruntime as ort

    options = session_options()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), options, providers=providers)
    feeds = {work.name: work.x}
    return lambda: session.run(None, feeds)


def time_runtimes(
    model: Any,
    checkpoint: Path | None,
    reference: Path | None,
    files: dict[str, Path],
    work: Workload,
) -> dict[str, Speed]:
    """Load every runtime side by side and time them (all released on return)."""
    return measure_speeds(load_runtimes(model, checkpoint, reference, files, work), work)


def load_runtimes(
    model: Any,
    checkpoint: Path | None,
    reference: Path | None,
    files: dict[str, Path],
    work: Workload,
) -> dict[str, Run]:
    """Every runtime loaded side by side, in table order (the pipeline when ``checkpoint`` is
    given, ORTModelForCTC when ``reference`` is, the CUDA rows when onnxruntime has CUDA)."""
    loaders: dict[str, Callable[[], Run]] = {
        "torch": partial(torch_run, model, work),
        **{p: partial(onnx_run, files[p], work) for p in PRECISIONS},
    }
    if checkpoint is not None:
        loaders["pipeline"] = partial(pipeline_run, model, checkpoint, work)
    if reference is not None:
        loaders["optimum"] = partial(optimum_run, reference, work)
    if cuda_available():
        loaders["fp16-cuda"] = partial(cuda_run, files["fp16"], work)
        loaders["fp32-cuda"] = partial(cuda_run, files["fp32"], work)
    return {runtime: loaders[runtime]() for runtime in RUNTIMES if runtime in loaders}


def measure_speeds(runs: dict[str, Run], work: Workload) -> dict[str, Speed]:
    """Warm every runtime up, then time them in turn, round after round, so that load
    from other processes spreads over all of them."""
    for runtime, run in runs.items():
        log.info("warming up %s", RUNTIMES[runtime])
        for _ in range(WARM_UP_RUNS):
            run()
    samples: dict[str, list[Sample]] = {runtime: [] for runtime in runs}
    for round_ in range(work.repeats):
        log.info("timing round %d of %d", round_ + 1, work.repeats)
        for runtime, run in runs.items():
            samples[runtime].append(quiet_sample(runtime, run))
    speeds = {r: Speed.of(r, samples[r], work.audio_s) for r in runs}
    for speed in speeds.values():
        log.info("%s: %.1fx real time", RUNTIMES[speed.runtime], speed.x_real_time)
    return speeds


def quiet_sample(runtime: str, run: Run) -> Sample:
    """One timed run, retaken (up to ``RETAKES`` times) while other processes were busy."""
    for attempt in range(RETAKES + 1):
        time.sleep(SETTLE_S)
        sample = timed(run)
        if sample.others_busy is None or sample.others_busy <= BUSY:
            break
        log.warning(
            "%s: other processes used %.0f%% of the CPUs during the run%s",
            RUNTIMES[runtime],
            100 * sample.others_busy,
            ", retaking it" if attempt < RETAKES else "; keeping it",
        )
    return Sample(sample.seconds, sample.others_busy, attempt)


def timed(run: Run) -> Sample:
    """Wall time of one run and the share of the CPUs that other processes used meanwhile."""
    before, own = system_cpu_s(), own_cpu_s()
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    return Sample(wall, others_busy(before, system_cpu_s(), own_cpu_s() - own, wall))


def others_busy(
    before: tuple[float, float] | None, after: tuple[float, float] | None, own_s: float, wall: float
) -> float | None:
    """Share of all CPUs busy over ``wall`` seconds, less this process's own ``own_s``
    (None off Linux, or when the run is too short for the 10 ms clock ticks)."""
    if before is None or after is None or wall < MIN_MEASURED_S:
        return None
    busy_s = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, (busy_s - own_s) / ((os.cpu_count() or 1) * wall))
