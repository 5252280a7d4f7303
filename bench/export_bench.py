"""Export time, file sizes and offline CPU speed of random-weight models at true size.

    python -m bench.export_bench [--configs NAME ...] [--out DIR] [--seconds S] [--repeats N]

For each architecture in ``../shared/models/configs``: build the model with seeded random
weights, save it as a checkpoint folder (weights, tokenizer, feature extractor), export it
with ``asr-export``'s pipeline (fp32, fp16, int8), then run one utterance through PyTorch,
optimum's ORTModelForCTC and our ONNX files on the CPU, all loaded side by side and timed
in turn, round after round (a run during which other processes took more than a tenth of
the CPUs is retaken), and split the int8 and fp32 run time over the parts of the network
with onnxruntime's profiler. Speed and size do not
depend on the weights; validation against PyTorch can (random models have no confident
transcripts), so a precision that fails it is still measured, from the same conversion,
and marked.

Raw figures go to ``DIR/export_bench.json``; Markdown tables go to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from streamasr.export import convert
from streamasr.export.errors import ExportError, ValidationFailedError
from streamasr.export.pipeline import ExportConfig, run_export
from streamasr.export.random_checkpoint import load_architecture, save_random_checkpoint
from streamasr.server.frontend import model_input
from streamasr.server.manifest import (
    MANIFEST_NAME,
    PRECISIONS,
    SAMPLE_RATE,
    InputSpec,
    Manifest,
    read_manifest,
)

from .proc import own_cpu_s, own_peak_rss_mib, system_cpu_ticks
from .stream_bench import load_set

log = logging.getLogger("bench.export_bench")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
CONFIG_DIR = SHARED_DIR / "models" / "configs"
SPEECH_DIR = SHARED_DIR / "speech" / "dev" / "human"
DEFAULT_CONFIGS = ("wav2vec2-base-960h", "wav2vec2-large-960h-lv60-self")
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
SEED = 0
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
NOISE_LEVEL = 0.05

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
PROFILED = ("int8", "fp32")
CHUNK_LENGTH_S = 10.0
"""The transformers pipeline's ``chunk_length_s`` (its long-audio mode)."""
PARTS = ("conv encoder", "positional conv", "transformer", "other")


@dataclass(frozen=True)
class BenchOptions:
    """What the command line asked for."""

    configs: tuple[str, ...]
    out: Path
    seconds: float
    repeats: int


@dataclass(frozen=True)
class Workload:
    """The one input every runtime is timed on."""

    name: str
    """Graph input name (``input_values`` or ``input_features``)."""
    x: NDArray[np.float32]
    """Graph input with its batch axis of 1."""
    audio_s: float
    repeats: int
    signal: NDArray[np.float32]
    """The raw 16 kHz audio (what the transformers pipeline takes)."""


@dataclass
class ExportFigures:
    """What our export pipeline took and wrote."""

    total_s: float
    steps_s: dict[str, float]
    """The pipeline's own step timings."""
    bytes: dict[str, int]
    """Bytes per precision (graph plus external data), validated or not."""
    failures: dict[str, str] = field(default_factory=dict)
    """Precisions that failed validation, with the pipeline's reason."""


@dataclass(frozen=True)
class Sample:
    """One timed run."""

    seconds: float
    others_busy: float | None
    """Share of all CPUs that other processes used during the run (None off Linux)."""
    retakes: int = 0
    """Runs thrown away before this one because other processes were busy."""


@dataclass
class Speed:
    """Timed runs of one runtime on the test input."""

    runtime: str
    runs_s: list[float]
    audio_s: float
    others_busy: list[float | None]
    """Per run: share of the CPUs other processes used (noise in the figure)."""
    retakes: int

    @classmethod
    def of(cls, runtime: str, samples: list[Sample], audio_s: float) -> Speed:
        return cls(
            runtime,
            [s.seconds for s in samples],
            audio_s,
            [s.others_busy for s in samples],
            sum(s.retakes for s in samples),
        )

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def x_real_time(self) -> float:
        return self.audio_s / self.median_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median_s": self.median_s, "x_real_time": self.x_real_time}


@dataclass
class ConfigResult:
    """Every figure measured for one architecture."""

    name: str
    params: int
    torch_attention: str
    export: ExportFigures
    optimum_export_s: float | None
    speeds: dict[str, Speed]
    splits: dict[str, dict[str, float]]
    """Share of profiled node time per part of the network, per precision."""
    peak_rss_mib: dict[str, float]
    """Process peak RSS (cumulative over the run) after each stage."""

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["speeds"] = {k: s.to_dict() for k, s in self.speeds.items()}
        return raw


# --- test signal -----------------------------------------------------------------------------


def test_signal(seconds: float, folder: Path = SPEECH_DIR) -> NDArray[np.float32]:
    """The dev set's human utterances end to end, tiled or cut to ``seconds`` (else noise)."""
    size = round(seconds * SAMPLE_RATE)
    speech = dev_speech(folder)
    if speech.size == 0:
        log.warning("no speech in %s: timing on seeded noise", folder)
        noise = np.random.default_rng(SEED).standard_normal(size)
        return (NOISE_LEVEL * noise).astype(np.float32)
    tiled: NDArray[np.float32] = np.resize(speech, size).astype(np.float32)
    return tiled


def dev_speech(folder: Path = SPEECH_DIR) -> NDArray[np.float32]:
    """The utterances of a dev set, concatenated in ``transcripts.tsv`` order (empty if absent)."""
    if not (folder / "transcripts.tsv").is_file():
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([s for s, _ in load_set(folder)])


# --- exports ---------------------------------------------------------------------------------


class StepRecorder(logging.Handler):
    """Collects the pipeline's "done in" step timings from its log records.

    ``ExportResult.timings`` holds them too, but run_export raises ValidationFailedError
    without returning the result, so a failed validation would lose them.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.timings: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if str(record.msg).endswith("done in %.1f s") and isinstance(args, tuple):
            step, elapsed = args[2], args[3]
            if isinstance(elapsed, float):
                self.timings[str(step)] = elapsed


def export_ours(checkpoint: Path, out_root: Path) -> tuple[Path, dict[str, float], dict[str, str]]:
    """Run our export pipeline; its folder, step timings and validation failures."""
    recorder = StepRecorder()
    pipeline_log = logging.getLogger("streamasr.export.pipeline")
    pipeline_log.addHandler(recorder)
    config = ExportConfig(model=str(checkpoint), out_root=out_root, precisions=PRECISIONS)
    failures: dict[str, str] = {}
    try:
        timings = run_export(config).timings
    except ValidationFailedError as exc:
        log.warning("%s", exc)
        timings = recorder.timings
        failures = dict(f.split(": ", 1) for f in exc.failures)
    finally:
        pipeline_log.removeHandler(recorder)
    return out_root / checkpoint.name, timings, failures


def precision_files(
    folder: Path, manifest: Manifest | None, checkpoint: Path, scratch: Path
) -> dict[str, Path]:
    """One ONNX file per precision: the export's, or the same conversion redone where
    validation failed (so that its size and speed can still be measured)."""
    written = manifest.precisions if manifest is not None else {}
    files = {p: folder / e.file for p, e in written.items()}
    for precision in PRECISIONS:  # fp32 first: the others are converted from it
        if precision not in files:
            log.info("redoing the %s conversion outside the pipeline, unvalidated", precision)
            files[precision] = unvalidated_file(precision, files, checkpoint, scratch)
    return files


def unvalidated_file(
    precision: str, files: dict[str, Path], checkpoint: Path, scratch: Path
) -> Path:
    """The pipeline's conversion of one precision, without validation."""
    from streamasr.export.source import load_checkpoint

    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"model.{precision}.onnx"
    if precision == "fp32":
        convert.fp32_file(load_checkpoint(str(checkpoint)), out)
    else:
        {"fp16": convert.fp16_file, "int8": convert.int8_file}[precision](files["fp32"], out)
    return out


def file_bytes(path: Path) -> int:
    """Size of a graph and its external data."""
    return sum(p.stat().st_size for p in convert.side_files(path))


def optimum_export(checkpoint: Path, out: Path) -> tuple[Path | None, float | None]:
    """optimum's own export of the checkpoint (for ORTModelForCTC) and its seconds."""
    from optimum.exporters.onnx import main_export

    started = time.perf_counter()
    try:
        main_export(str(checkpoint), out, task="automatic-speech-recognition", do_validation=False)
    except (ValueError, KeyError, NotImplementedError) as exc:
        log.warning("optimum cannot export %s: %s", checkpoint.name, exc)
        return None, None
    return out, time.perf_counter() - started


# --- speed -----------------------------------------------------------------------------------

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


def profiling_options(prefix: Path) -> Any:
    """Session settings that also write a profile trace and the optimised graph."""
    options = session_options()
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    options.optimized_model_filepath = str(optimized_graph(prefix))
    data = optimized_graph(prefix).name + ".data"
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", data
    )
    return options


def optimized_graph(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".optimized.onnx")


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
    before, own = system_cpu_ticks(), own_cpu_s()
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    return Sample(wall, others_busy(before, system_cpu_ticks(), own_cpu_s() - own, wall))


def others_busy(
    before: tuple[int, int] | None, after: tuple[int, int] | None, own_s: float, wall: float
) -> float | None:
    """Share of all CPUs busy over ``wall`` seconds, less this process's own ``own_s``
    (None off Linux, or when the run is too short for the 10 ms clock ticks)."""
    if before is None or after is None or wall < MIN_MEASURED_S:
        return None
    busy_s = ((after[0] - before[0]) - (after[1] - before[1])) / os.sysconf("SC_CLK_TCK")
    return max(0.0, (busy_s - own_s) / ((os.cpu_count() or 1) * wall))


# --- where the time goes ---------------------------------------------------------------------


def part_of(node: str) -> str:
    """Which part of the network a graph node belongs to, by its scoped name."""
    if "pos_conv" in node:
        return "positional conv"
    if "feature_extractor" in node or "conv_layers" in node:
        return "conv encoder"
    if "encoder/layers." in node:
        return "transformer"
    return "other"


def profile_split(path: Path, work: Workload, scratch: Path) -> dict[str, float]:
    """Share of node time per part of the network in the run after the warm-up runs."""
    prefix = scratch / f"profile_{path.stem}"
    session = cpu_session(path, profiling_options(prefix))
    for _ in range(WARM_UP_RUNS + 1):
        session.run(None, {work.name: work.x})
    trace = Path(session.end_profiling())
    times = last_run_node_times(json.loads(trace.read_text(encoding="utf-8")))
    return shares(times, node_scopes(optimized_graph(prefix)))


def node_scopes(graph: Path) -> dict[str, str]:
    """The scoped name of each node of an optimised graph: its own, or for nodes that
    onnxruntime created by fusion (``Gelu_token_3``), the name of their first output."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return {
        node.name: node.name if node.name.startswith("/") else next(iter(node.output), node.name)
        for node in model.graph.node
    }


def last_run_node_times(events: list[dict[str, Any]]) -> dict[str, float]:
    """Microseconds per node in the trace's last ``model_run``."""
    last = [e for e in events if e.get("name") == "model_run"][-1]
    start, end = last["ts"], last["ts"] + last["dur"]
    times: dict[str, float] = defaultdict(float)
    for event in events:
        label = str(event.get("name", ""))
        node = event.get("cat") == "Node" and label.endswith("_kernel_time")
        if node and start <= event["ts"] <= end:
            times[label.removesuffix("_kernel_time")] += float(event["dur"])
    return times


def shares(times: dict[str, float], scopes: dict[str, str]) -> dict[str, float]:
    """Fraction of the total per part of the network."""
    totals = dict.fromkeys(PARTS, 0.0)
    for node, micros in times.items():
        totals[part_of(scopes.get(node, node))] += micros
    whole = sum(totals.values()) or 1.0
    return {part: value / whole for part, value in totals.items()}


# --- one configuration -----------------------------------------------------------------------


def bench_config(
    name: str,
    signal: NDArray[np.float32],
    repeats: int,
    arch: dict[str, Any] | None = None,
    profile: bool = True,
) -> ConfigResult:
    """Build, export, time and (with ``profile``) profile one architecture: ``arch``, or the
    file ``name`` of ``../shared/models/configs``."""
    arch = arch if arch is not None else load_architecture(CONFIG_DIR / f"{name}.json")
    with tempfile.TemporaryDirectory(prefix="export_bench.") as tmp:
        root = Path(tmp)
        checkpoint = root / name
        save_random_checkpoint(arch, checkpoint, seed=SEED)
        figures, files, spec = export_all(checkpoint, root)
        model = load_torch_model(checkpoint)
        rss = {"export": own_peak_rss_mib()}
        reference, optimum_s = optimum_export(checkpoint, root / "optimum")
        x = model_input(signal, spec)[None]
        work = Workload(spec.name, x, signal.size / SAMPLE_RATE, repeats, signal)
        speeds = time_runtimes(model, checkpoint, reference, files, work)
        gc.collect()
        rss["speed"] = own_peak_rss_mib()
        splits = {p: profile_split(files[p], work, root) for p in PROFILED} if profile else {}
        if profile:
            rss["profile"] = own_peak_rss_mib()
    params = sum(p.numel() for p in model.parameters())
    attention = str(model.config._attn_implementation)
    return ConfigResult(name, params, attention, figures, optimum_s, speeds, splits, rss)


def export_all(checkpoint: Path, root: Path) -> tuple[ExportFigures, dict[str, Path], InputSpec]:
    """Our export, timed, with one file per precision and the graph's input spec."""
    started = time.perf_counter()
    folder, timings, failures = export_ours(checkpoint, root / "exports")
    total = time.perf_counter() - started
    steps = {step.replace(f"{root}/", ""): s for step, s in timings.items()}
    manifest = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else None
    files = precision_files(folder, manifest, checkpoint, root / "unvalidated")
    sizes = {p: file_bytes(f) for p, f in files.items()}
    spec = manifest.input if manifest is not None else checkpoint_input(checkpoint)
    return ExportFigures(total, steps, sizes, failures), files, spec


def checkpoint_input(checkpoint: Path) -> InputSpec:
    """The graph input the exporter derives from a checkpoint (when no manifest was written)."""
    from streamasr.export.source import load_checkpoint

    return load_checkpoint(str(checkpoint)).input


# --- tables ----------------------------------------------------------------------------------


def x_real_time(result: ConfigResult, runtime: str) -> str:
    speed = result.speeds.get(runtime)
    return f"{speed.x_real_time:.1f}x" if speed is not None else "n/a"


def speedup(result: ConfigResult, runtime: str, baseline: str) -> str:
    """How many times faster ``runtime`` is than ``baseline``."""
    fast, slow = result.speeds.get(runtime), result.speeds.get(baseline)
    if fast is None or slow is None:
        return "n/a"
    return f"{slow.median_s / fast.median_s:.2f}x"


def size_cell(result: ConfigResult, precision: str) -> str:
    """MB of one precision, with its share of fp32 and a mark when it failed validation."""
    sizes = result.export.bytes
    mark = " †" if precision in result.export.failures else ""
    if precision == "fp32":
        return f"{sizes[precision] / 1e6:,.0f}{mark}"
    share = 100 * sizes[precision] / sizes["fp32"]
    return f"{sizes[precision] / 1e6:,.0f} ({share:.0f}%){mark}"


def summary_table(results: list[ConfigResult]) -> str:
    """One row per architecture, for the README."""
    lines = [
        "| config | params | export s | MB fp32 | MB fp16 | MB int8 | PyTorch eager "
        "| transformers pipeline | ORTModelForCTC | ours fp32 | ours int8 | int8 vs eager "
        "| int8 vs ORTModelForCTC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in results:
        cells = [
            r.name,
            f"{r.params / 1e6:.0f}M",
            f"{r.export.total_s:.0f}",
            *(size_cell(r, p) for p in PRECISIONS),
            *(x_real_time(r, k) for k in ("torch", "pipeline", "optimum", "fp32", "int8")),
            speedup(r, "int8", "torch"),
            speedup(r, "int8", "optimum"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed_table(result: ConfigResult) -> str:
    """Every runtime of one architecture side by side."""
    lines = [
        "| runtime | median s | runs s | x real time | vs PyTorch eager | vs ORTModelForCTC "
        "| other processes' CPU share |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for runtime, speed in sorted(result.speeds.items(), key=lambda kv: list(RUNTIMES).index(kv[0])):
        runs = ", ".join(f"{t:.2f}" for t in speed.runs_s)
        cells = [
            RUNTIMES[runtime] + (" †" if runtime in result.export.failures else ""),
            f"{speed.median_s:.2f}",
            runs,
            f"{speed.x_real_time:.1f}x",
            speedup(result, runtime, "torch"),
            speedup(result, runtime, "optimum"),
            busy_cell(speed),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def busy_cell(speed: Speed) -> str:
    """The largest share of the CPUs other processes used during a kept run; retaken runs."""
    known = [b for b in speed.others_busy if b is not None]
    share = f"{100 * max(known):.0f}%" if known else "?"
    return f"{share} ({speed.retakes} retaken)" if speed.retakes else share


def export_table(result: ConfigResult) -> str:
    """The pipeline's steps with their seconds."""
    lines = ["| export step | s |", "| --- | ---: |"]
    lines += [f"| {step} | {s:.1f} |" for step, s in result.export.steps_s.items()]
    lines.append(f"| total (wall) | {result.export.total_s:.1f} |")
    if result.optimum_export_s is not None:
        lines.append(f"| for comparison: optimum's fp32 export | {result.optimum_export_s:.1f} |")
    return "\n".join(lines)


def split_line(precision: str, split: dict[str, float]) -> str:
    """E.g. ``int8 time: conv encoder 41%, positional conv 6%, transformer 50%, other 3%``."""
    parts = ", ".join(f"{part} {100 * share:.0f}%" for part, share in split.items())
    return f"{precision} time: {parts}"


def config_report(result: ConfigResult, opts: BenchOptions) -> str:
    """Everything measured for one architecture."""
    failures = [f"† {p} failed validation: {why}" for p, why in result.export.failures.items()]
    if failures:
        failures.append("  († files were converted again outside the pipeline and measured anyway)")
    rss = ", ".join(f"after {stage} {mib:,.0f} MiB" for stage, mib in result.peak_rss_mib.items())
    return "\n\n".join(
        [
            f"### {result.name} ({result.params / 1e6:.1f}M parameters, {opts.seconds:g} s of "
            f"audio, median of {opts.repeats}, {THREADS} threads, PyTorch attention: "
            f"{result.torch_attention})",
            export_table(result),
            speed_table(result),
            "\n".join(split_line(p, s) for p, s in result.splits.items()),
            *(["\n".join(failures)] if failures else []),
            f"peak RSS of the process: {rss}",
        ]
    )


def report(results: list[ConfigResult], opts: BenchOptions) -> str:
    """The printed output: one section per architecture, then the summary table."""
    sections = [config_report(r, opts) for r in results]
    return "\n\n".join([*sections, "### Summary (x real time on CPU)", summary_table(results)])


# --- command line ----------------------------------------------------------------------------


def write_json(results: list[ConfigResult], opts: BenchOptions) -> Path:
    """All raw figures, with the settings and tool versions."""
    from streamasr.export.pipeline import tool_versions

    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / "export_bench.json"
    payload = {
        "settings": {**asdict(opts), "out": str(opts.out), "threads": THREADS, "seed": SEED},
        "signal": str(SPEECH_DIR) if SPEECH_DIR.is_dir() else "seeded noise",
        "tools": tool_versions(),
        "results": [r.to_dict() for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def available_configs() -> list[str]:
    """Names of the architecture files in ../shared/models/configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def parse_args(argv: Sequence[str] | None) -> BenchOptions:
    parser = argparse.ArgumentParser(prog="python -m bench.export_bench", description=__doc__)
    parser.add_argument(
        "--configs",
        nargs="+",
        metavar="NAME",
        choices=available_configs(),
        default=list(DEFAULT_CONFIGS),
        help=f"architectures in {CONFIG_DIR} (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--seconds", type=float, default=20.0, help="test audio length")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per runtime")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    return BenchOptions(tuple(args.configs), args.out, args.seconds, args.repeats)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    for name in ("bench", "streamasr"):
        logging.getLogger(name).setLevel(logging.INFO)
    opts = parse_args(argv)
    signal = test_signal(opts.seconds)
    results: list[ConfigResult] = []
    for name in opts.configs:
        try:
            results.append(bench_config(name, signal, opts.repeats))
        except (ExportError, RuntimeError, OSError, ValueError):
            # One architecture failing must not lose the others' figures.
            log.exception("%s: benchmark failed", name)
    log.info("raw figures in %s", write_json(results, opts))
    print(report(results, opts))
    return 0 if len(results) == len(opts.configs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
